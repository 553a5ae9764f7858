import { randomUUID } from 'node:crypto';
import { cleanRedis, testConfig } from '@app/testing';
import { ProjectRepository } from '@app/projects';
import { Redis } from 'ioredis';
import { QueueName } from '../queues';
import { QueueFullError } from '../task-errors';
import { TaskRepository, TransitionError } from './task.repository';

/** Against the real Redis, under a prefix of its own. */
describe('TaskRepository', () => {
  const config = testConfig();
  const redis = new Redis(config.redis.url);
  const repo = new TaskRepository(redis, config);
  const projects = new ProjectRepository(redis, config);

  afterAll(async () => {
    await cleanRedis(config);
    redis.disconnect();
  });

  async function create(project = 'p1', type = 'generate_image', at = Date.now()) {
    const id = randomUUID();
    await repo.create({
      task_id: id,
      project_id: project,
      task_type: type,
      priority: 2,
      task_data: { a: 1 },
      estimated_duration: 10,
      queue: QueueName.GpuMedium,
      job_id: id,
      created_at: new Date(at),
    });
    return id;
  }

  it('creates a record, its indexes and the project record', async () => {
    const id = await create('proj_create');
    const task = await repo.get(id);
    expect(task).toMatchObject({
      status: 'queued',
      progress: 0,
      task_data: { a: 1 },
      result: null,
      attempts: 0,
    });
    const project = await projects.get('proj_create');
    expect(project).toMatchObject({
      task_count: 1,
      pending_tasks: 1,
      active_tasks: 0,
      storage_prefix: 'projects/proj_create/',
    });
    expect(await projects.active()).toContain('proj_create');
  });

  it('applies only legal transitions, atomically, and keeps counters right', async () => {
    const id = await create('proj_tr');
    await expect(repo.transition(id, 'completed')).rejects.toMatchObject({
      reason: 'illegal',
      current: 'queued',
    });
    expect(await repo.transition(id, 'processing', { run_id: 'r1' })).toBe('queued');
    expect(await projects.get('proj_tr')).toMatchObject({ active_tasks: 1, pending_tasks: 1 });
    await expect(repo.transition(id, 'completed', {}, { runId: 'other' })).rejects.toMatchObject({
      reason: 'stale_run',
    });
    expect(await repo.transition(id, 'completed', { progress: 1 }, { runId: 'r1' })).toBe(
      'processing',
    );
    expect(await projects.get('proj_tr')).toMatchObject({ active_tasks: 0, pending_tasks: 0 });
    expect(await projects.active()).not.toContain('proj_tr');
    await expect(repo.transition(id, 'cancelled')).rejects.toBeInstanceOf(TransitionError);
    await expect(repo.transition(randomUUID(), 'cancelled')).rejects.toMatchObject({
      reason: 'not_found',
    });
  });

  it('cancel racing completion has exactly one winner', async () => {
    for (let i = 0; i < 20; i++) {
      const id = await create('proj_race');
      await repo.transition(id, 'processing', { run_id: 'r' });
      const results = await Promise.allSettled([
        repo.transition(id, 'cancelled'),
        repo.transition(id, 'completed', {}, { runId: 'r' }),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const final = (await repo.get(id))!.status;
      expect(['cancelled', 'completed']).toContain(final);
      const winner = results[0].status === 'fulfilled' ? 'cancelled' : 'completed';
      expect(final).toBe(winner);
    }
  });

  it('stores progress monotonic, only for the current run, and reports a cancel', async () => {
    const id = await create('proj_pg');
    await repo.transition(id, 'processing', { run_id: 'run-a' });
    expect(await repo.reportProgress(id, 'run-a', 0.5, 'generating_image')).toEqual({
      status: 'processing',
      progress: 0.5,
    });
    expect((await repo.reportProgress(id, 'run-a', 0.2, 'generating_image')).progress).toBe(0.5);
    expect((await repo.reportProgress(id, 'run-b', 0.9, 'other')).progress).toBe(0.5);
    expect(await repo.get(id)).toMatchObject({ progress: 0.5, current_step: 'generating_image' });
    expect(await redis.hget(repo.progressKey(id), 'step_started_at')).toEqual(expect.any(String));
    await repo.transition(id, 'cancelled');
    expect((await repo.reportProgress(id, 'run-a', 0.7, 'x')).status).toBe('cancelled');
    expect(await redis.ttl(repo.progressKey(id))).toBeGreaterThan(3500);
  });

  describe('startRun', () => {
    const prefix = config.redis.prefix;
    const statusIndex = (project: string, status: string, type = 'generate_image') => [
      `${prefix}:tasks:by_project:${project}:status:${status}`,
      `${prefix}:tasks:by_project:${project}:status:${status}:type:${type}`,
      `${prefix}:tasks:by_status:${status}`,
    ];
    async function indexedIn(id: string, project: string, status: string): Promise<boolean[]> {
      const [byProject, byType, byStatus] = statusIndex(project, status);
      return [
        (await redis.zscore(byProject, id)) !== null,
        (await redis.zscore(byType, id)) !== null,
        (await redis.sismember(byStatus, id)) === 1,
      ];
    }
    const startPatch = (at: string) => ({ started_at: at, progress: 0, current_step: 'starting' });

    it('starts a queued task in one step: attempts, run id, fields, indexes and counters', async () => {
      const id = await create('proj_start');
      await redis.hset(repo.progressKey(id), 'progress', '0.3');
      const at = new Date().toISOString();
      const start = await repo.startRun(id, id, startPatch(at));
      expect(start).toMatchObject({
        outcome: 'started',
        previous: { status: 'queued', runId: null },
        task: {
          status: 'processing',
          attempts: 1,
          run_id: `${id}#1`,
          started_at: at,
          progress: 0,
          current_step: 'starting',
          task_data: { a: 1 },
        },
      });
      // The record as stored is what the step returned.
      expect(await repo.get(id)).toEqual(start.outcome === 'started' ? start.task : null);
      expect(await indexedIn(id, 'proj_start', 'queued')).toEqual([false, false, false]);
      expect(await indexedIn(id, 'proj_start', 'processing')).toEqual([true, true, true]);
      expect(await projects.get('proj_start')).toMatchObject({ active_tasks: 1, pending_tasks: 1 });
      expect(await projects.active()).toContain('proj_start');
      expect(await redis.exists(repo.progressKey(id))).toBe(0);
      // The same as the transition it replaces: the run then completes as before.
      await repo.transition(id, 'completed', { progress: 1 }, { runId: `${id}#1` });
      expect(await projects.get('proj_start')).toMatchObject({ active_tasks: 0, pending_tasks: 0 });
    });

    it('takes over a stalled run (processing → processing) without touching counters', async () => {
      const id = await create('proj_takeover');
      await repo.startRun(id, id, startPatch(new Date().toISOString()));
      await repo.reportProgress(id, `${id}#1`, 0.6, 'generating_image');
      const start = await repo.startRun(id, id, startPatch(new Date().toISOString()));
      expect(start).toMatchObject({
        outcome: 'started',
        previous: { status: 'processing', runId: `${id}#1` },
        task: { status: 'processing', attempts: 2, run_id: `${id}#2`, progress: 0 },
      });
      expect(await indexedIn(id, 'proj_takeover', 'processing')).toEqual([true, true, true]);
      expect(await projects.get('proj_takeover')).toMatchObject({
        active_tasks: 1,
        pending_tasks: 1,
      });
      // The lost run may no longer write.
      expect((await repo.reportProgress(id, `${id}#1`, 0.9, 'x')).progress).toBe(0);
      await expect(
        repo.transition(id, 'completed', {}, { runId: `${id}#1` }),
      ).rejects.toMatchObject({ reason: 'stale_run' });
    });

    it('resumes counting attempts after an automatic retry', async () => {
      const id = await create('proj_start_retry');
      await repo.startRun(id, id, startPatch(new Date().toISOString()));
      await repo.transition(
        id,
        'queued',
        { run_id: null, current_step: 'waiting_for_retry' },
        { runId: `${id}#1`, from: ['processing'] },
      );
      const start = await repo.startRun(id, id, startPatch(new Date().toISOString()));
      expect(start).toMatchObject({
        outcome: 'started',
        previous: { status: 'queued', runId: null },
        task: { attempts: 2, run_id: `${id}#2` },
      });
    });

    it('changes nothing for a missing record, a superseded job or a finished task', async () => {
      expect(await repo.startRun(randomUUID(), 'job', startPatch('x'))).toEqual({
        outcome: 'missing',
      });

      const id = await create('proj_start_no');
      const before = await redis.hgetall(repo.taskKey(id));
      const superseded = await repo.startRun(id, `${id}_old`, startPatch('x'));
      expect(superseded).toMatchObject({ outcome: 'superseded', task: { job_id: id } });
      expect(await redis.hgetall(repo.taskKey(id))).toEqual(before);

      await repo.transition(id, 'cancelled');
      const cancelled = await redis.hgetall(repo.taskKey(id));
      expect(await repo.startRun(id, id, startPatch('x'))).toMatchObject({
        outcome: 'illegal',
        task: { status: 'cancelled', attempts: 0 },
      });
      expect(await redis.hgetall(repo.taskKey(id))).toEqual(cancelled);
      expect(await indexedIn(id, 'proj_start_no', 'processing')).toEqual([false, false, false]);
      expect(await indexedIn(id, 'proj_start_no', 'cancelled')).toEqual([true, true, true]);
      expect(await projects.get('proj_start_no')).toMatchObject({
        active_tasks: 0,
        pending_tasks: 0,
      });
    });
  });

  it('lists newest first by index, with filters, at the cost of one page', async () => {
    const t0 = Date.now();
    const ids = [];
    for (let i = 0; i < 5; i++)
      ids.push(await create('proj_list', i % 2 ? 'process_audio' : 'generate_image', t0 + i));
    await repo.transition(ids[4], 'cancelled');
    const page = await repo.list('proj_list', { page: 1, limit: 2 });
    expect(page.total).toBe(5);
    expect(page.tasks.map((t) => t.task_id)).toEqual([ids[4], ids[3]]);
    const audio = await repo.list('proj_list', { page: 1, limit: 10, task_type: 'process_audio' });
    expect(audio.tasks.map((t) => t.task_id)).toEqual([ids[3], ids[1]]);
    const queuedImages = await repo.list('proj_list', {
      page: 1,
      limit: 10,
      task_type: 'generate_image',
      status: 'queued',
    });
    expect(queuedImages.tasks.map((t) => t.task_id)).toEqual([ids[2], ids[0]]);
    expect((await repo.list('proj_list', { page: 9, limit: 10 })).tasks).toEqual([]);
  });

  it('refuses a create when the queue holds its limit, in the same step, storing nothing', async () => {
    const wait = `${config.redis.prefix}:bl:wait`;
    const prioritized = `${config.redis.prefix}:bl:prioritized`;
    const delayed = `${config.redis.prefix}:bl:delayed`;
    await redis.rpush(wait, 'j1');
    await redis.zadd(prioritized, 1, 'j2');
    await redis.zadd(delayed, 1, 'j3');
    const id = randomUUID();
    const task = {
      task_id: id,
      project_id: 'proj_full',
      task_type: 'generate_image',
      priority: 2 as const,
      task_data: {},
      estimated_duration: 1,
      queue: QueueName.GpuMedium,
      job_id: id,
      created_at: new Date(),
    };
    const full = { keys: [wait, prioritized, delayed] as [string, string, string], max: 3 };
    await expect(repo.create(task, full)).rejects.toBeInstanceOf(QueueFullError);
    expect(await repo.get(id)).toBeNull();
    expect((await repo.list('proj_full', { page: 1, limit: 10 })).total).toBe(0);
    await repo.create(task, { ...full, max: 4 });
    expect((await repo.get(id))?.status).toBe('queued');
    expect(await repo.recordQueuePosition(id, { wait, prioritized }, 'j2')).toBe(2);
    expect((await repo.get(id))?.queue_position).toBe(2);
    expect(await repo.recordQueuePosition(id, { wait, prioritized }, 'gone')).toBe(0);
  });

  it('counts, in the create step, the queue position the job will have once added', async () => {
    const wait = `${config.redis.prefix}:pos:wait`;
    const prioritized = `${config.redis.prefix}:pos:prioritized`;
    const delayed = `${config.redis.prefix}:pos:delayed`;
    const keys = [wait, prioritized, delayed] as [string, string, string];
    // BullMQ's scores: priority · 2³² + a counter that only grows.
    const score = (priority: number, counter: number) => priority * 2 ** 32 + counter;
    await redis.rpush(wait, 'plain');
    await redis.zadd(prioritized, score(1, 1), 'urgent', score(2, 2), 'n1', score(3, 3), 'low');
    await redis.zadd(prioritized, score(2, 4), 'n2');
    await redis.zadd(delayed, 1, 'later');
    const make = (priority: 1 | 2 | 3) => {
      const id = randomUUID();
      return {
        task_id: id,
        project_id: 'proj_pos',
        task_type: 'generate_image',
        priority,
        task_data: {},
        estimated_duration: 1,
        queue: QueueName.GpuMedium,
        job_id: id,
        created_at: new Date(),
      };
    };
    const normal = make(2);
    // Behind the plain job, the urgent one and both normal ones; ahead of the low one.
    expect((await repo.create(normal, { keys, max: -1 })).queue_position).toBe(5);
    expect((await repo.get(normal.task_id))?.queue_position).toBe(5);
    // What reading the rank after the add (as BullMQ adds it) gives is the same.
    await redis.zadd(prioritized, score(2, 5), normal.job_id);
    expect(
      await repo.recordQueuePosition(normal.task_id, { wait, prioritized }, normal.job_id),
    ).toBe(5);
    expect((await repo.create(make(1), { keys, max: -1 })).queue_position).toBe(3);
    expect((await repo.create(make(3), { keys, max: -1 })).queue_position).toBe(7);
    // Not about to be queued: no position.
    const bare = make(2);
    expect((await repo.create(bare)).queue_position).toBe(0);
    expect((await repo.get(bare.task_id))?.queue_position).toBe(0);
  });

  describe('webhook outbox', () => {
    const outbox = () => repo.webhookOutboxKey();
    async function entries(taskId: string) {
      const all = await redis.xrange(outbox(), '-', '+');
      return all
        .map(
          ([, flat]) =>
            Object.fromEntries(
              flat.map((v, i, a) => (i % 2 ? [] : [v, a[i + 1]])).filter((p) => p.length),
            ) as Record<string, string>,
        )
        .filter((e) => e.task_id === taskId);
    }
    async function createWithCallback(callback_url: string | null) {
      const id = randomUUID();
      await repo.create({
        task_id: id,
        project_id: 'proj_hook',
        task_type: 'generate_image',
        priority: 2,
        task_data: {},
        callback_url,
        estimated_duration: 1,
        queue: QueueName.GpuMedium,
        job_id: id,
        created_at: new Date(),
      });
      return id;
    }

    it('records the terminal event of a task with a callback_url in the same step', async () => {
      const id = await createWithCallback('https://hooks.example.com/ams');
      await repo.transition(id, 'processing', { run_id: 'r1' });
      expect(await entries(id)).toEqual([]);
      expect((await repo.get(id))!.webhook).toBeNull();
      const result = {
        media_key: 'projects/proj_hook/image/x/output.jpg',
        content_type: 'image/jpeg',
        payload_media_id: 'm1',
        metadata: { seed: 1 },
      };
      await repo.transition(
        id,
        'completed',
        { result, completed_at: '2026-01-01T00:00:00.000Z' },
        { runId: 'r1' },
      );
      expect(await entries(id)).toEqual([
        {
          webhook_id: `msg_${id}_completed_0`,
          event: 'task.completed',
          task_id: id,
          project_id: 'proj_hook',
          status: 'completed',
          retries: '0',
          result: JSON.stringify(result),
          error: '',
          completed_at: '2026-01-01T00:00:00.000Z',
        },
      ]);
      expect((await repo.get(id))!.webhook).toEqual({
        id: `msg_${id}_completed_0`,
        event: 'task.completed',
        state: 'pending',
        attempts: 0,
        last_status: null,
        last_error: null,
        delivered_at: null,
        next_attempt_at: null,
      });
      // Staying terminal (cancelled → cancelled style rewrites) is no new event.
      await repo.transition(id, 'completed', { progress: 1 }, { from: ['completed'] });
      expect(await entries(id)).toHaveLength(1);
    });

    it('makes each ending of a manual retry a new event, and none without callback_url', async () => {
      const id = await createWithCallback('https://hooks.example.com/ams');
      await repo.transition(id, 'processing', { run_id: 'r1' });
      await repo.transition(id, 'failed', { error: 'bad input' });
      await repo.transition(id, 'queued', { retries: 1, error: null }, { from: ['failed'] });
      await repo.transition(id, 'cancelled');
      const events = await entries(id);
      expect(events.map((e) => [e.webhook_id, e.event, e.error])).toEqual([
        [`msg_${id}_failed_0`, 'task.failed', 'bad input'],
        [`msg_${id}_cancelled_1`, 'task.cancelled', ''],
      ]);
      expect((await repo.get(id))!.webhook).toMatchObject({
        id: `msg_${id}_cancelled_1`,
        event: 'task.cancelled',
        state: 'pending',
      });

      const silent = await createWithCallback(null);
      await repo.transition(silent, 'cancelled');
      expect(await entries(silent)).toEqual([]);
      expect((await repo.get(silent))!.webhook).toBeNull();
    });

    it('is not written by a refused transition', async () => {
      const id = await createWithCallback('https://hooks.example.com/ams');
      await expect(repo.transition(id, 'completed')).rejects.toBeInstanceOf(TransitionError);
      expect(await entries(id)).toEqual([]);
    });
  });
});
