import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createRedisClient, newTaskId, projectPartitionPrefix } from '@app/redis';
import { cleanRedis, testConfig } from '@app/testing';
import { ProjectRepository } from '@app/projects';
import type { Queue } from 'bullmq';
import { TaskQueueService } from '../src/queue/task-queue.service';
import { QueueName } from '../src/queues';
import { QueueFullError } from '../src/task-errors';
import { TaskRepository } from '../src/records/task.repository';
import { moveAllowed, moveTarget, TASK_MOVES, type TaskMoveName } from '../src/records/task-moves';
import { TaskStateMachine, TransitionError } from '../src/records/task-state.machine';
import { TASK_STATUSES, type TaskStatus } from '../src/records/task-status';

/** Task records and every move, against the real Redis under a prefix of its own. */
describe('task records and moves', () => {
  const config = testConfig();
  const redis = createRedisClient(config, 'spec');
  const repo = new TaskRepository(redis, config);
  const moves = new TaskStateMachine(redis, repo);
  const projects = new ProjectRepository(redis, config);
  const claimOpts = (op: string = randomUUID(), ownLostRuns: string[] = [], maxLostRuns = 5) => ({
    op,
    ownLostRuns,
    maxLostRuns,
    startedAt: new Date().toISOString(),
  });
  async function claimed(id: string, op?: string): Promise<string> {
    const claim = await moves.claimRun(id, id, claimOpts(op));
    if (claim.outcome !== 'started') throw new Error(`not started: ${claim.outcome}`);
    return claim.task.run_id!;
  }
  const result = {
    media_key: 'projects/p/image/x/output.jpg',
    content_type: 'image/jpeg',
    payload_media_id: null,
    metadata: {},
  };

  afterAll(async () => {
    await cleanRedis(config);
    redis.disconnect();
  });

  function newTask(project: string) {
    const id = newTaskId(project);
    return {
      task_id: id,
      project_id: project,
      task_type: 'generate_image',
      priority: 2 as const,
      task_data: {},
      estimated_duration: 1,
      queue: QueueName.GpuMedium,
      job_id: id,
      created_at: new Date(),
    };
  }

  async function create(project = 'p1', type = 'generate_image', at = Date.now()) {
    const id = newTaskId(project);
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

  /** Brings a new task into `status`; returns it with the run id it last had. */
  async function taskIn(status: TaskStatus): Promise<{ id: string; runId: string }> {
    const id = await create('proj_walk');
    if (status === 'queued') return { id, runId: 'no-run' };
    const runId = await claimed(id);
    if (status === 'completed') await moves.complete(id, runId, result);
    if (status === 'failed')
      await moves.fail(id, runId, { error: 'x', errorClass: 'default', clearResult: false });
    if (status === 'cancelled') await moves.cancel(id);
    return { id, runId };
  }

  /** Makes move `name` on the task, as its owner would; resolves to the status it ends in. */
  async function makeMove(name: TaskMoveName, id: string, runId: string): Promise<TaskStatus> {
    switch (name) {
      case 'create':
        throw new Error('create has no from-state');
      case 'claimRun': {
        const claim = await moves.claimRun(id, id, claimOpts());
        if (claim.outcome !== 'started')
          throw new TransitionError(
            'illegal',
            claim.outcome === 'missing' ? undefined : claim.task.status,
          );
        return claim.task.status;
      }
      case 'reportProgress': {
        const { status } = await moves.reportProgress(id, runId, 0.5, 'x');
        if (status !== 'processing') throw new TransitionError('illegal', status as TaskStatus);
        return 'processing';
      }
      case 'recordPendingResult':
        await moves.recordPendingResult(id, runId, result);
        break;
      case 'complete':
        await moves.complete(id, runId, result);
        break;
      case 'scheduleRetry':
        await moves.scheduleRetry(id, runId, {
          error: 'e',
          errorClass: 'network',
          nextRetryAt: new Date().toISOString(),
          classRetries: { network: 1 },
        });
        break;
      case 'handBack':
        await moves.handBack(id, runId, { attempts: 0, reason: 'shutdown' });
        break;
      case 'fail':
        await moves.fail(id, runId, { error: 'e', errorClass: 'default', clearResult: false });
        break;
      case 'failUnqueued':
        await moves.failUnqueued(id, 'e');
        break;
      case 'failLost':
        await moves.failLost(id, 'e');
        break;
      case 'cancel':
        await moves.cancel(id);
        break;
      case 'discardResult':
        await moves.discardResult(id, runId);
        break;
      case 'retry':
        await moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 });
        break;
      case 'requeue':
        await moves.requeue(id, 1);
        break;
      case 'recordWebhookOutcome':
        throw new Error('not a status move');
    }
    return (await repo.get(id))!.status;
  }

  const walked = (Object.keys(TASK_MOVES) as TaskMoveName[]).filter(
    (m) => m !== 'create' && m !== 'recordWebhookOutcome',
  );
  describe.each(walked)('move %s', (name) => {
    it.each([...TASK_STATUSES])('from %s: allowed exactly as the table says', async (status) => {
      const { id, runId } = await taskIn(status);
      const before = await redis.hgetall(repo.taskKey(id));
      if (moveAllowed(name, status)) {
        expect(await makeMove(name, id, runId)).toBe(moveTarget(name, status));
      } else {
        await expect(makeMove(name, id, runId)).rejects.toBeInstanceOf(TransitionError);
        // A refused move changes nothing.
        expect(await redis.hgetall(repo.taskKey(id))).toEqual(before);
      }
    });
  });

  it('recordWebhookOutcome writes only the pending event of an ended task, once per attempt', async () => {
    const id = newTaskId('proj_hook_move');
    await repo.create({
      task_id: id,
      project_id: 'proj_hook_move',
      task_type: 'generate_image',
      priority: 2,
      task_data: {},
      callback_url: 'https://hooks.example.com/x',
      estimated_duration: 1,
      queue: QueueName.GpuMedium,
      job_id: id,
      created_at: new Date(),
    });
    const hook = `msg_${id}_cancelled_0`;
    expect(await moves.recordWebhookOutcome(id, hook, { state: 'pending' }, 'a1')).toBe(false);
    await moves.cancel(id);
    const failed = { state: 'pending' as const, last_status: 500 };
    expect(await moves.recordWebhookOutcome(id, hook, failed, 'a1')).toBe(true);
    // The same attempt recorded again (a re-sent command) counts once.
    expect(await moves.recordWebhookOutcome(id, hook, failed, 'a1')).toBe(true);
    expect((await repo.get(id))!.webhook).toMatchObject({ attempts: 1, last_status: 500 });
    expect(await moves.recordWebhookOutcome(id, 'msg_other', failed, 'a2')).toBe(false);
  });

  it('keeps counters and indexes right through a run, and refuses a stale run', async () => {
    const id = await create('proj_tr');
    await expect(moves.complete(id, 'r1', result)).rejects.toMatchObject({
      reason: 'illegal',
      current: 'queued',
    });
    const runId = await claimed(id);
    expect(await projects.get('proj_tr')).toMatchObject({ active_tasks: 1, pending_tasks: 1 });
    await expect(moves.complete(id, 'other', result)).rejects.toMatchObject({
      reason: 'stale_run',
    });
    expect(await moves.complete(id, runId, result)).toBe('processing');
    expect(await projects.get('proj_tr')).toMatchObject({ active_tasks: 0, pending_tasks: 0 });
    expect(await projects.active()).not.toContain('proj_tr');
    await expect(moves.cancel(randomUUID())).rejects.toMatchObject({ reason: 'not_found' });
  });

  it('cancel racing completion has exactly one winner', async () => {
    for (let i = 0; i < 20; i++) {
      const id = await create('proj_race');
      const runId = await claimed(id);
      const results = await Promise.allSettled([
        moves.cancel(id),
        moves.complete(id, runId, result),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const final = (await repo.get(id))!.status;
      const winner = results[0].status === 'fulfilled' ? 'cancelled' : 'completed';
      expect(final).toBe(winner);
    }
  });

  it('a move run twice with one token answers as the first did and changes nothing more', async () => {
    const id = await create('proj_op');
    const runId = await claimed(id);
    const retry = {
      error: 'e',
      errorClass: 'network',
      nextRetryAt: new Date().toISOString(),
      classRetries: { network: 1 },
    };
    expect(await moves.scheduleRetry(id, runId, retry, { op: 'op-1' })).toBe('processing');
    const after = await redis.hgetall(repo.taskKey(id));
    // The re-sent command: no ILLEGAL, no second change.
    expect(await moves.scheduleRetry(id, runId, retry, { op: 'op-1' })).toBe('processing');
    expect(await redis.hgetall(repo.taskKey(id))).toEqual(after);
    // Another operation is refused as usual.
    await expect(moves.scheduleRetry(id, runId, retry, { op: 'op-2' })).rejects.toMatchObject({
      reason: 'illegal',
    });
    // A manual retry repeated with its token: one retry, no 409.
    await moves.failUnqueued(id, 'x');
    await moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 }, { op: 'retry-1' });
    expect(
      await moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 }, { op: 'retry-1' }),
    ).toBe('failed');
    expect(await repo.get(id)).toMatchObject({ status: 'queued', retries: 1 });
  });

  it('a create run twice with one token answers its position again; another create of the id is EXISTS', async () => {
    const task = newTask('proj_create_twice');
    const first = await repo.create(task, undefined, undefined, 'create-op');
    expect((await repo.create(task, undefined, undefined, 'create-op')).queue_position).toBe(
      first.queue_position,
    );
    await expect(repo.create(task, undefined, undefined, 'other-op')).rejects.toThrow(/EXISTS/);
    expect(await projects.get('proj_create_twice')).toMatchObject({ task_count: 1 });
  });

  it('writes the Idempotency-Key entry in the create step', async () => {
    const task = newTask('proj_idem');
    const key = `${projectPartitionPrefix(config.redis.prefix, 'proj_idem')}:idempotency:proj_idem:abc`;
    await repo.create(task, undefined, {
      key,
      entry: { state: 'done', fingerprint: 'f', status: 201 },
      ttlSeconds: 60,
    });
    expect(JSON.parse((await redis.get(key))!)).toEqual({
      state: 'done',
      fingerprint: 'f',
      status: 201,
      task_id: task.task_id,
      queue_position: 0,
    });
    expect(await redis.ttl(key)).toBeGreaterThan(50);
  });

  it('stores progress monotonic, only for the current run, and tells a superseded run', async () => {
    const id = await create('proj_pg');
    const runId = await claimed(id);
    expect(await moves.reportProgress(id, runId, 0.5, 'generating_image')).toEqual({
      status: 'processing',
      progress: 0.5,
    });
    expect((await moves.reportProgress(id, runId, 0.2, 'generating_image')).progress).toBe(0.5);
    expect(await moves.reportProgress(id, 'other-run', 0.9, 'other')).toEqual({
      status: 'superseded',
      progress: 0.5,
    });
    expect(await repo.get(id)).toMatchObject({ progress: 0.5, current_step: 'generating_image' });
    expect(await redis.hget(repo.progressKey(id), 'step_started_at')).toEqual(expect.any(String));
    await moves.cancel(id);
    expect((await moves.reportProgress(id, runId, 0.7, 'x')).status).toBe('cancelled');
    expect(await redis.ttl(repo.progressKey(id))).toBeGreaterThan(3500);
    expect((await moves.reportProgress(randomUUID(), runId, 0.7, 'x')).status).toBe('gone');
  });

  describe('claimRun', () => {
    const prefix = config.redis.prefix;
    const statusIndex = (project: string, status: string, type = 'generate_image') => [
      `${projectPartitionPrefix(prefix, project)}:tasks:by_project:${project}:status:${status}`,
      `${projectPartitionPrefix(prefix, project)}:tasks:by_project:${project}:status:${status}:type:${type}`,
    ];
    async function indexedIn(id: string, project: string, status: string): Promise<boolean[]> {
      const [byProject, byType] = statusIndex(project, status);
      return [
        (await redis.zscore(byProject, id)) !== null,
        (await redis.zscore(byType, id)) !== null,
      ];
    }

    it('starts a queued task in one step: attempts, run id, fields, indexes and counters', async () => {
      const id = await create('proj_start');
      await redis.hset(repo.progressKey(id), 'progress', '0.3');
      const opts = claimOpts();
      const start = await moves.claimRun(id, id, opts);
      expect(start).toMatchObject({
        outcome: 'started',
        previous: { status: 'queued', runId: null },
        task: {
          status: 'processing',
          attempts: 1,
          run_id: `${id}#1`,
          started_at: opts.startedAt,
          progress: 0,
          current_step: 'starting',
          task_data: { a: 1 },
        },
      });
      expect(await repo.get(id)).toEqual(start.outcome === 'started' ? start.task : null);
      expect(await indexedIn(id, 'proj_start', 'queued')).toEqual([false, false]);
      expect(await indexedIn(id, 'proj_start', 'processing')).toEqual([true, true]);
      expect(await projects.get('proj_start')).toMatchObject({ active_tasks: 1, pending_tasks: 1 });
      expect(await redis.exists(repo.progressKey(id))).toBe(0);
      // The same fetch claiming again (a re-sent command) is the same start.
      expect(await moves.claimRun(id, id, opts)).toMatchObject({
        outcome: 'started',
        previous: { status: 'queued' },
        task: { attempts: 1, run_id: `${id}#1` },
      });
      expect(await projects.get('proj_start')).toMatchObject({ active_tasks: 1 });
      // No global status sets any more.
      expect(await redis.exists(`${prefix}:tasks:by_status:processing`)).toBe(0);
    });

    it("takes over another worker's run: one more attempt and lost run, counters untouched", async () => {
      const id = await create('proj_takeover');
      const first = await claimed(id);
      await moves.reportProgress(id, first, 0.6, 'generating_image');
      const start = await moves.claimRun(id, id, claimOpts());
      expect(start).toMatchObject({
        outcome: 'started',
        previous: { status: 'processing', runId: first },
        task: { status: 'processing', attempts: 2, lost_runs: 1, run_id: `${id}#2`, progress: 0 },
      });
      // The lost run's progress hash goes with it.
      expect(await redis.exists(repo.progressKey(id))).toBe(0);
      expect(await projects.get('proj_takeover')).toMatchObject({
        active_tasks: 1,
        pending_tasks: 1,
      });
      // The lost run learns it is superseded and may no longer write.
      expect((await moves.reportProgress(id, first, 0.9, 'x')).status).toBe('superseded');
      await expect(moves.complete(id, first, result)).rejects.toMatchObject({
        reason: 'stale_run',
      });
    });

    it('takes over a run this process lost its lock on without charging an attempt', async () => {
      const id = await create('proj_own_lost');
      const first = await claimed(id);
      const start = await moves.claimRun(id, id, claimOpts(randomUUID(), [first]));
      expect(start).toMatchObject({
        outcome: 'started',
        task: { attempts: 1, lost_runs: 0, run_id: `${id}#2` },
      });
    });

    it('fails the task once more runs were lost than allowed', async () => {
      const id = await create('proj_exhausted');
      await claimed(id);
      await moves.claimRun(id, id, claimOpts(randomUUID(), [], 1));
      const last = await moves.claimRun(id, id, claimOpts(randomUUID(), [], 1));
      expect(last).toMatchObject({
        outcome: 'exhausted',
        task: { status: 'failed', lost_runs: 2, run_id: null },
      });
      expect(last.outcome !== 'missing' && last.task.error).toMatch(/lost 2 times/);
      expect(await projects.get('proj_exhausted')).toMatchObject({
        active_tasks: 0,
        pending_tasks: 0,
      });
    });

    it('counts attempts on after an automatic retry and a hand-back charges none', async () => {
      const id = await create('proj_start_retry');
      const r1 = await claimed(id);
      await moves.scheduleRetry(id, r1, {
        error: 'e',
        errorClass: 'network',
        nextRetryAt: new Date().toISOString(),
        classRetries: { network: 1 },
      });
      const r2 = await claimed(id);
      expect(await repo.get(id)).toMatchObject({
        attempts: 2,
        run_id: r2,
        class_retries: { network: 1 },
      });
      await moves.handBack(id, r2, { attempts: 1, reason: 'lock_lost', lockLosses: 1 });
      expect(await repo.get(id)).toMatchObject({
        status: 'queued',
        attempts: 1,
        current_step: 'requeued_after_lock_loss',
        lock_losses: 1,
      });
      await claimed(id);
      expect(await repo.get(id)).toMatchObject({ attempts: 2, run_id: `${id}#3` });
    });

    it('changes nothing for a missing record, a superseded job or a finished task', async () => {
      expect(await moves.claimRun(randomUUID(), 'job', claimOpts())).toEqual({
        outcome: 'missing',
      });
      const id = await create('proj_start_no');
      const before = await redis.hgetall(repo.taskKey(id));
      const superseded = await moves.claimRun(id, `${id}_old`, claimOpts());
      expect(superseded).toMatchObject({ outcome: 'superseded', task: { job_id: id } });
      expect(await redis.hgetall(repo.taskKey(id))).toEqual(before);
      await moves.cancel(id);
      const cancelled = await redis.hgetall(repo.taskKey(id));
      expect(await moves.claimRun(id, id, claimOpts())).toMatchObject({
        outcome: 'illegal',
        task: { status: 'cancelled', attempts: 0 },
      });
      expect(await redis.hgetall(repo.taskKey(id))).toEqual(cancelled);
    });
  });

  it('reads only status and run id for many tasks at once', async () => {
    const a = await create('proj_states');
    const b = await create('proj_states');
    const runB = await claimed(b);
    expect(await repo.runStates([a, b, randomUUID()])).toEqual([
      { status: 'queued', runId: null },
      { status: 'processing', runId: runB },
      { status: null, runId: null },
    ]);
  });

  it('lists newest first by index, with filters, at the cost of one page', async () => {
    const t0 = Date.now();
    const ids = [];
    for (let i = 0; i < 5; i++)
      ids.push(await create('proj_list', i % 2 ? 'process_audio' : 'generate_image', t0 + i));
    await moves.cancel(ids[4]);
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

  describe("the queue's room and position, read in the queue's slot before a create", () => {
    function queues(queueMaxSize: number) {
      const cfg = testConfig({
        REDIS_PREFIX: config.redis.prefix,
        QUEUE_MAX_SIZE: String(queueMaxSize),
      });
      const fake = () => new EventEmitter() as unknown as Queue;
      return new TaskQueueService(fake(), fake(), fake(), cfg, redis);
    }

    it('refuses when the waiting jobs (wait + prioritized + delayed) reach QUEUE_MAX_SIZE', async () => {
      const svc = queues(3);
      const q = QueueName.CpuIntensive;
      await redis.rpush(svc.key(q, 'wait'), 'j1');
      await redis.zadd(svc.key(q, 'prioritized'), 1, 'j2');
      await redis.zadd(svc.key(q, 'delayed'), 1, 'j3');
      await expect(svc.reserve(q, 2)).rejects.toBeInstanceOf(QueueFullError);
      expect(await queues(4).reserve(q, 2)).toBe(3);
      // The keys are BullMQ's, under the queue's own hash tag.
      expect(svc.key(q, 'wait')).toBe(
        `${config.redis.prefix}:bull:{cpu_intensive}:cpu_intensive:wait`,
      );
    });

    it('counts the position a job of that priority will have once added', async () => {
      const svc = queues(1000);
      const q = QueueName.GpuHeavy;
      // BullMQ's scores: priority · 2³² + a counter that only grows.
      const score = (priority: number, counter: number) => priority * 2 ** 32 + counter;
      await redis.rpush(svc.key(q, 'wait'), 'plain');
      await redis.zadd(
        svc.key(q, 'prioritized'),
        score(1, 1),
        'urgent',
        score(2, 2),
        'n1',
        score(3, 3),
        'low',
        score(2, 4),
        'n2',
      );
      await redis.zadd(svc.key(q, 'delayed'), 1, 'later');
      // Behind the plain job, the urgent one and both normal ones; ahead of the low one.
      expect(await svc.reserve(q, 2)).toBe(5);
      expect(await svc.reserve(q, 1)).toBe(3);
      expect(await svc.reserve(q, 3)).toBe(6);
      // What reading the rank after the add (as BullMQ adds it) gives is the same.
      await redis.zadd(svc.key(q, 'prioritized'), score(2, 5), 'mine');
      expect(
        (await redis.llen(svc.key(q, 'wait'))) +
          (await redis.zrank(svc.key(q, 'prioritized'), 'mine'))! +
          1,
      ).toBe(5);
    });

    it('the create stores the position it is given; 0 when not about to be queued', async () => {
      const queued = newTask('proj_pos');
      expect((await repo.create(queued, 5)).queue_position).toBe(5);
      expect((await repo.get(queued.task_id))?.queue_position).toBe(5);
      const bare = newTask('proj_pos');
      expect((await repo.create(bare)).queue_position).toBe(0);
      expect((await repo.get(bare.task_id))?.queue_position).toBe(0);
    });

    it("refuses a task id outside its project's partition", async () => {
      let other = randomUUID();
      while (projectPartitionPrefix('x', other) === projectPartitionPrefix('x', 'proj_part')) {
        other = randomUUID();
      }
      await expect(repo.create({ ...newTask('proj_part'), task_id: other })).rejects.toThrow(
        /partition/,
      );
    });
  });

  describe('webhook outbox', () => {
    async function entries(taskId: string) {
      const all = await redis.xrange(repo.webhookOutboxKey(taskId), '-', '+');
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
      const id = newTaskId('proj_hook');
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
      const runId = await claimed(id);
      expect(await entries(id)).toEqual([]);
      expect((await repo.get(id))!.webhook).toBeNull();
      const result = {
        media_key: 'projects/proj_hook/image/x/output.jpg',
        content_type: 'image/jpeg',
        payload_media_id: 'm1',
        metadata: { seed: 1 },
      };
      await moves.complete(id, runId, result);
      const completedAt = (await repo.get(id))!.completed_at!;
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
          completed_at: completedAt,
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
      // A move that keeps a terminal status (a webhook outcome) is no new event.
      await moves.recordWebhookOutcome(id, `msg_${id}_completed_0`, { state: 'pending' }, 'w1');
      expect(await entries(id)).toHaveLength(1);
    });

    it('makes each ending of a manual retry a new event, and none without callback_url', async () => {
      const id = await createWithCallback('https://hooks.example.com/ams');
      const runId = await claimed(id);
      await moves.fail(id, runId, {
        error: 'bad input',
        errorClass: 'validation',
        clearResult: false,
      });
      await moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 });
      await moves.cancel(id);
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
      await moves.cancel(silent);
      expect(await entries(silent)).toEqual([]);
      expect((await repo.get(silent))!.webhook).toBeNull();
    });

    it('is not written by a refused move', async () => {
      const id = await createWithCallback('https://hooks.example.com/ams');
      await expect(moves.complete(id, 'r', result)).rejects.toBeInstanceOf(TransitionError);
      expect(await entries(id)).toEqual([]);
    });
  });
});
