import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Test, type TestingModule } from '@nestjs/testing';
import { ConfigModule } from '@app/config';
import { mediaOutputKey, ProjectRepository } from '@app/projects';
import { Redis } from 'ioredis';
import {
  createRedisClient,
  newTaskId,
  partitionOf,
  projectPartitionPrefix,
  RedisModule,
  redisKey,
} from '@app/redis';
import { StorageDriver, StorageModule } from '@app/storage';
import { cleanRedis, testConfig } from '@app/testing';
import { TaskQueueService } from '../src/queue/task-queue.service';
import { QueueName } from '../src/queues';
import { TaskRetentionSweeper } from '../src/reconcile/task-retention.sweeper';
import { taskResultView } from '../src/records/task.record';
import { TaskRepository } from '../src/records/task.repository';
import { TaskStateMachine, TransitionError } from '../src/records/task-state.machine';
import type { TaskStatus } from '../src/records/task-status';
import { TasksModule } from '../src/tasks.module';

const DAY = 24 * 3600 * 1000;

/**
 * The retention sweeper against the real Redis, each block under a prefix of its own. Ends are
 * set back in time by rewriting a task's score in its partition's ended index (what the sweeper
 * reads and its scripts check), so nothing waits for days.
 */
async function retentionHarness(env: Record<string, string>) {
  // The timer never fires within a test: passes are run by hand.
  const config = testConfig({ RETENTION_INTERVAL_MS: '86400000', ...env });
  const module: TestingModule = await Test.createTestingModule({
    imports: [ConfigModule.forRoot(config), RedisModule, TasksModule, StorageModule],
    providers: [TaskRetentionSweeper, ProjectRepository],
  }).compile();
  await module.init();
  const redis = createRedisClient(config, 'spec');
  const repo = module.get(TaskRepository);
  const moves = module.get(TaskStateMachine);
  const storage = module.get(StorageDriver);
  const queues = module.get(TaskQueueService);
  const h = {
    config,
    module,
    redis,
    repo,
    moves,
    storage,
    queues,
    sweeper: module.get(TaskRetentionSweeper),
    projects: module.get(ProjectRepository),

    async create(project: string, idempotencyDigest?: string): Promise<string> {
      const id = newTaskId(project);
      await repo.create(
        {
          task_id: id,
          project_id: project,
          task_type: 'generate_image',
          priority: 2,
          task_data: {},
          estimated_duration: 1,
          queue: QueueName.GpuMedium,
          job_id: id,
          created_at: new Date(),
        },
        0,
        idempotencyDigest
          ? {
              key: h.idempotencyKey(project, idempotencyDigest),
              entry: { state: 'done', fingerprint: 'f', status: 201 },
              ttlSeconds: 3600,
            }
          : undefined,
      );
      return id;
    },

    idempotencyKey(project: string, digest: string): string {
      return redisKey(
        projectPartitionPrefix(config.redis.prefix, project),
        'idempotency',
        project,
        digest,
      );
    },

    async claim(id: string): Promise<string> {
      const claim = await moves.claimRun(id, id, {
        op: randomUUID(),
        ownLostRuns: [],
        maxLostRuns: 5,
        startedAt: new Date().toISOString(),
      });
      if (claim.outcome !== 'started') throw new Error(`not started: ${claim.outcome}`);
      await moves.reportProgress(id, claim.task.run_id!, 0.5, 'generating_image');
      return claim.task.run_id!;
    },

    /** A task of `project` brought to `status`; completed ones have an output stored. */
    async taskIn(project: string, status: TaskStatus, idempotencyDigest?: string) {
      const id = await h.create(project, idempotencyDigest);
      if (status === 'queued') return id;
      const runId = await h.claim(id);
      if (status === 'completed') {
        const key = mediaOutputKey(project, 'image', id, 'png');
        await storage.put(key, { kind: 'buffer', data: Buffer.from('png') }, 'image/png');
        await moves.complete(id, runId, {
          media_key: key,
          content_type: 'image/png',
          payload_media_id: null,
          metadata: { seed: 1 },
        });
      }
      if (status === 'failed')
        await moves.fail(id, runId, { error: 'e', errorClass: 'default', clearResult: false });
      if (status === 'cancelled') await moves.cancel(id);
      return id;
    },

    endedKey(id: string): string {
      return repo.endedKey(partitionOf(id));
    },

    /** The task's end set `days` back (its index score; the record's completed_at too). */
    async endedAgo(id: string, days: number): Promise<void> {
      const at = Date.now() - days * DAY;
      expect(await redis.zadd(h.endedKey(id), 'XX', 'CH', at, id)).toBe(1);
      await redis.hset(repo.taskKey(id), 'completed_at', new Date(at).toISOString());
    },

    /** Every key that names the task, and whether it exists / holds the task. */
    async traces(id: string, project: string, status: string) {
      const base = `${projectPartitionPrefix(config.redis.prefix, project)}:tasks:by_project:${project}`;
      const indexes = [
        base,
        `${base}:type:generate_image`,
        `${base}:status:${status}`,
        `${base}:status:${status}:type:generate_image`,
      ];
      return {
        hash: await redis.exists(repo.taskKey(id)),
        progress: await redis.exists(repo.progressKey(id)),
        ended: (await redis.zscore(h.endedKey(id), id)) !== null,
        indexes: await Promise.all(indexes.map(async (k) => (await redis.zscore(k, id)) !== null)),
      };
    },

    mediaPath(key: string): string {
      return path.join(config.storage.localDir, key);
    },

    async close(): Promise<void> {
      await module.close();
      await cleanRedis(config);
      redis.disconnect();
    },
  };
  return h;
}

type Harness = Awaited<ReturnType<typeof retentionHarness>>;

describe('task retention (TASK_RETENTION_DAYS=30, no media retention)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await retentionHarness({ TASK_RETENTION_DAYS: '30' });
  });
  afterAll(() => h.close());

  it('removes ended tasks older than the setting with every trace; younger and pending ones stay; counters follow', async () => {
    const p = 'ret_sweep';
    const completed = await h.taskIn(p, 'completed', 'digest-completed');
    const failed = await h.taskIn(p, 'failed');
    const cancelled = await h.taskIn(p, 'cancelled');
    const young = await h.taskIn(p, 'completed');
    const queued = await h.taskIn(p, 'queued');
    const processing = await h.taskIn(p, 'processing');
    // The terminal move indexed each ended task at its end, and no pending one.
    for (const id of [completed, failed, cancelled, young]) {
      const end = Date.parse((await h.repo.get(id))!.completed_at!);
      const score = Number(await h.redis.zscore(h.endedKey(id), id));
      expect(score).toBeGreaterThanOrEqual(end);
      expect(score).toBeLessThan(end + 5000);
    }
    expect(await h.redis.zscore(h.endedKey(queued), queued)).toBeNull();
    expect(await h.redis.zscore(h.endedKey(processing), processing)).toBeNull();
    for (const id of [completed, failed, cancelled]) await h.endedAgo(id, 31);
    await h.endedAgo(young, 29);
    const output = (await h.repo.get(completed))!.result!.media_key;
    expect(await h.traces(completed, p, 'completed')).toEqual({
      hash: 1,
      progress: 1,
      ended: true,
      indexes: [true, true, true, true],
    });
    expect(await h.redis.exists(h.idempotencyKey(p, 'digest-completed'))).toBe(1);
    expect(await h.projects.get(p)).toMatchObject({ task_count: 6, pending_tasks: 2 });

    const pass = await h.sweeper.pass();
    expect(pass.leader).toBe(true);
    expect(pass.removed).toEqual(expect.arrayContaining([completed, failed, cancelled]));
    expect(pass.removed).not.toContain(young);
    for (const [id, status] of [
      [completed, 'completed'],
      [failed, 'failed'],
      [cancelled, 'cancelled'],
    ]) {
      expect(await h.traces(id, p, status)).toEqual({
        hash: 0,
        progress: 0,
        ended: false,
        indexes: [false, false, false, false],
      });
    }
    expect(await h.redis.exists(h.idempotencyKey(p, 'digest-completed'))).toBe(0);
    // No media retention: the output stays.
    expect(existsSync(h.mediaPath(output))).toBe(true);
    expect(await h.repo.get(young)).toMatchObject({ status: 'completed' });
    expect(await h.repo.get(queued)).toMatchObject({ status: 'queued' });
    expect(await h.repo.get(processing)).toMatchObject({ status: 'processing' });
    expect(await h.projects.get(p)).toMatchObject({
      task_count: 3,
      pending_tasks: 2,
      active_tasks: 1,
    });
    const listed = await h.repo.list(p, { page: 1, limit: 10 });
    expect(listed.total).toBe(3);
    expect(listed.tasks.map((t) => t.task_id).sort()).toEqual([young, queued, processing].sort());
    // Nothing more is due: a second pass removes nothing.
    expect((await h.sweeper.pass()).removed).toEqual([]);
  });

  it('never removes a queued or processing task, however old an index entry says it is', async () => {
    const p = 'ret_pending';
    const queued = await h.taskIn(p, 'queued');
    const processing = await h.taskIn(p, 'processing');
    // Entries a pending task should never have (an index written by hand, a bug): stale.
    for (const id of [queued, processing]) {
      await h.redis.zadd(h.endedKey(id), Date.now() - 400 * DAY, id);
    }
    const pass = await h.sweeper.pass();
    expect(pass.removed).not.toContain(queued);
    expect(pass.removed).not.toContain(processing);
    expect(await h.repo.get(queued)).toMatchObject({ status: 'queued' });
    expect(await h.repo.get(processing)).toMatchObject({ status: 'processing' });
    // The stale entries are dropped, so they do not come up again.
    expect(await h.redis.zscore(h.endedKey(queued), queued)).toBeNull();
    expect(await h.redis.zscore(h.endedKey(processing), processing)).toBeNull();
  });

  it('does not find a task missing from the ended index (ended before the index existed)', async () => {
    const id = await h.taskIn('ret_unindexed', 'completed');
    await h.redis.zrem(h.endedKey(id), id);
    expect((await h.sweeper.pass(Date.now() + 365 * DAY)).removed).not.toContain(id);
    expect(await h.repo.get(id)).toMatchObject({ status: 'completed' });
  });

  it('does not sweep a retried task; its next end is the one that counts', async () => {
    const p = 'ret_retry';
    const id = await h.taskIn(p, 'failed');
    await h.endedAgo(id, 60);
    await h.moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 });
    expect(await h.redis.zscore(h.endedKey(id), id)).toBeNull();
    expect((await h.sweeper.pass()).removed).not.toContain(id);
    expect(await h.repo.get(id)).toMatchObject({ status: 'queued', retries: 1 });
    // It ends again now: not due before 30 days from now.
    await h.moves.cancel(id);
    expect((await h.sweeper.pass()).removed).not.toContain(id);
    expect((await h.sweeper.pass(Date.now() + 29 * DAY)).removed).not.toContain(id);
    expect((await h.sweeper.pass(Date.now() + 31 * DAY)).removed).toContain(id);
    expect(await h.repo.get(id)).toBeNull();
  });

  it('a retry racing the removal: one wins, never half of each', async () => {
    const p = 'ret_race';
    const cutoff = Date.now() - 30 * DAY;
    let retriesWon = 0;
    let sweepsWon = 0;
    for (let i = 0; i < 20; i++) {
      const id = await h.taskIn(p, i % 2 ? 'failed' : 'cancelled');
      await h.endedAgo(id, 31);
      const [retry, sweep] = await Promise.allSettled([
        h.moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 }),
        h.repo.sweep(id, cutoff),
      ]);
      if (sweep.status === 'rejected') throw sweep.reason;
      const queuedIndex = `${projectPartitionPrefix(h.config.redis.prefix, p)}:tasks:by_project:${p}:status:queued`;
      if (retry.status === 'fulfilled') {
        retriesWon += 1;
        expect(sweep.value.outcome).toBe('pending');
        expect(await h.repo.get(id)).toMatchObject({ status: 'queued' });
        expect(await h.redis.zscore(queuedIndex, id)).not.toBeNull();
      } else {
        sweepsWon += 1;
        expect(sweep.value.outcome).toBe('removed');
        expect(retry.reason).toBeInstanceOf(TransitionError);
        expect((retry.reason as TransitionError).reason).toBe('not_found');
        expect(await h.traces(id, p, 'queued')).toMatchObject({ hash: 0, ended: false });
      }
    }
    expect(retriesWon + sweepsWon).toBe(20);
    // The sweeper read the index before the retry and removes only after it: the retry wins.
    const id = await h.taskIn(p, 'failed');
    await h.endedAgo(id, 31);
    const due = await h.repo.ended(partitionOf(id), -Infinity, cutoff, 0, 1000);
    expect(due.map((e) => e.taskId)).toContain(id);
    await h.moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 });
    expect(await h.repo.sweep(id, cutoff)).toEqual({ outcome: 'pending' });
    expect(await h.repo.get(id)).toMatchObject({ status: 'queued' });
  });

  it("leaves an Idempotency-Key entry that names another task, and removes the task's job", async () => {
    const p = 'ret_idem';
    const id = await h.taskIn(p, 'queued', 'digest-reused');
    // The key expired and was used again by a later request: the entry is that request's now.
    const key = h.idempotencyKey(p, 'digest-reused');
    const other = { state: 'done', fingerprint: 'g', status: 201, task_id: newTaskId(p) };
    await h.redis.set(key, JSON.stringify(other));
    await h.queues.enqueue(
      QueueName.GpuMedium,
      'generate_image',
      { task_id: id, project_id: p },
      id,
      2,
    );
    await h.moves.cancel(id);
    await h.endedAgo(id, 45);
    expect((await h.sweeper.pass()).removed).toContain(id);
    expect(JSON.parse((await h.redis.get(key))!)).toEqual(other);
    expect(await h.queues.inspect(QueueName.GpuMedium, id)).toEqual({ state: 'unknown' });
  });

  it('keeps the progress of an ended task one hour after its end, and drops it when queued again', async () => {
    const p = 'ret_progress';
    for (const status of ['completed', 'failed', 'cancelled'] as const) {
      const id = await h.taskIn(p, status);
      const ttl = await h.redis.pttl(h.repo.progressKey(id));
      expect({ status, ttl }).toEqual({ status, ttl: expect.any(Number) });
      expect(ttl).toBeGreaterThan(3_500_000);
      expect(ttl).toBeLessThanOrEqual(3_600_000);
      if (status !== 'completed') {
        await h.moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 0 });
        expect(await h.redis.exists(h.repo.progressKey(id))).toBe(0);
      }
    }
    // While a task runs, its progress does not expire.
    const running = await h.taskIn(p, 'processing');
    expect(await h.redis.pttl(h.repo.progressKey(running))).toBe(-1);
  });

  it('one sweeper leads at a time; a pass while Redis is unreachable does nothing', async () => {
    const other = new TaskRetentionSweeper(
      h.redis,
      testConfig({
        REDIS_PREFIX: h.config.redis.prefix,
        STORAGE_LOCAL_DIR: h.config.storage.localDir,
        TASK_RETENTION_DAYS: '30',
        WORKER_ID: 'another-worker',
      }),
      h.repo,
      h.queues,
      h.storage,
    );
    expect((await h.sweeper.pass()).leader).toBe(true);
    expect(await other.pass()).toMatchObject({ leader: false, removed: [] });

    const unreachable = new Redis('redis://127.0.0.1:1', { lazyConnect: true });
    const offline = new TaskRetentionSweeper(unreachable, h.config, h.repo, h.queues, h.storage);
    expect(await offline.pass()).toMatchObject({ leader: false, removed: [] });
    unreachable.disconnect();
  });
});

describe('task retention bounds a pass by RETENTION_BATCH', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await retentionHarness({ TASK_RETENTION_DAYS: '7', RETENTION_BATCH: '3' });
  });
  afterAll(() => h.close());

  it('removes at most RETENTION_BATCH tasks a pass, the rest in the next', async () => {
    const ids: string[] = [];
    // Projects spread over several partitions.
    for (let i = 0; i < 5; i++) ids.push(await h.taskIn(`ret_batch_${i}`, 'cancelled'));
    for (const id of ids) await h.endedAgo(id, 8);
    const first = await h.sweeper.pass();
    expect(first.removed).toHaveLength(3);
    const second = await h.sweeper.pass();
    expect(second.removed).toHaveLength(2);
    expect([...first.removed, ...second.removed].sort()).toEqual([...ids].sort());
    expect((await h.sweeper.pass()).removed).toEqual([]);
  });
});

describe('media retention (TASK_RETENTION_DAYS=30, MEDIA_RETENTION_DAYS=10, local storage)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await retentionHarness({ TASK_RETENTION_DAYS: '30', MEDIA_RETENTION_DAYS: '10' });
  });
  afterAll(() => h.close());

  it('deletes outputs older than the setting and says so in the record; records go at their own age', async () => {
    const p = 'ret_media';
    const [expired, kept, swept] = [
      await h.taskIn(p, 'completed'),
      await h.taskIn(p, 'completed'),
      await h.taskIn(p, 'completed'),
    ];
    const keyOf = async (id: string) => (await h.repo.get(id))!.result!.media_key;
    const [expiredKey, keptKey, sweptKey] = [
      await keyOf(expired),
      await keyOf(kept),
      await keyOf(swept),
    ];
    await h.endedAgo(expired, 15);
    await h.endedAgo(kept, 5);
    await h.endedAgo(swept, 40);

    const pass = await h.sweeper.pass();
    expect(pass.removed).toContain(swept);
    expect(pass.mediaExpired).toContain(expired);
    expect(pass.mediaExpired).not.toContain(kept);
    expect(pass.mediaFailed).toEqual([]);
    expect(existsSync(h.mediaPath(expiredKey))).toBe(false);
    expect(existsSync(h.mediaPath(sweptKey))).toBe(false);
    expect(existsSync(h.mediaPath(keptKey))).toBe(true);
    expect(await h.repo.get(swept)).toBeNull();

    // The record stays, and no longer hands out a URL for what is gone.
    const record = (await h.repo.get(expired))!;
    expect(record).toMatchObject({ status: 'completed' });
    expect(record.result).toMatchObject({
      media_key: expiredKey,
      media_deleted_at: expect.any(String),
    });
    expect(await taskResultView(record.result, h.storage)).toEqual({
      media_url: null,
      payload_media_id: null,
      metadata: { seed: 1 },
      media_deleted_at: record.result!.media_deleted_at,
    });
    expect((await taskResultView((await h.repo.get(kept))!.result, h.storage))?.media_url).toEqual(
      expect.stringContaining(keptKey),
    );

    // Handled once: the next pass does not look at it again.
    expect((await h.sweeper.pass()).mediaExpired).toEqual([]);
    // Its record goes at 30 days like any other.
    expect((await h.sweeper.pass(Date.now() + 16 * DAY)).removed).toContain(expired);
  });

  it('a retry of a task whose output was deleted starts afresh', async () => {
    const p = 'ret_media_retry';
    // A failed task may keep a stored output (its Payload registration failed).
    const failed = await h.create(p);
    const runId = await h.claim(failed);
    const key = mediaOutputKey(p, 'image', failed, 'png');
    await h.storage.put(key, { kind: 'buffer', data: Buffer.from('png') }, 'image/png');
    await h.moves.recordPendingResult(failed, runId, {
      media_key: key,
      content_type: 'image/png',
      payload_media_id: null,
      metadata: {},
    });
    await h.moves.fail(failed, runId, { error: 'e', errorClass: 'payload', clearResult: false });
    await h.endedAgo(failed, 12);
    expect((await h.sweeper.pass()).mediaExpired).toContain(failed);
    expect(existsSync(h.mediaPath(key))).toBe(false);
    await h.moves.retry(failed, { retries: 1, jobId: `${failed}_r1`, queuePosition: 0 });
    expect(await h.redis.hexists(h.repo.taskKey(failed), 'media_deleted_at')).toBe(0);
    expect(await h.repo.get(failed)).toMatchObject({ status: 'queued', result: null });
  });
});

describe('media retention on r2/s3 marks records only', () => {
  it('leaves the objects to the bucket lifecycle rule', async () => {
    const h = await retentionHarness({ TASK_RETENTION_DAYS: '30', MEDIA_RETENTION_DAYS: '10' });
    try {
      const p = 'ret_media_s3';
      const id = await h.taskIn(p, 'completed');
      const key = (await h.repo.get(id))!.result!.media_key;
      await h.endedAgo(id, 11);
      // The same sweeper on a config that names a bucket (the object is on local disk here).
      const s3 = testConfig({
        REDIS_PREFIX: h.config.redis.prefix,
        STORAGE_LOCAL_DIR: h.config.storage.localDir,
        WORKER_ID: h.config.worker.id,
        TASK_RETENTION_DAYS: '30',
        MEDIA_RETENTION_DAYS: '10',
        STORAGE_DRIVER: 's3',
        R2_ACCESS_KEY: 'a',
        R2_SECRET_KEY: 'b',
        R2_BUCKET_NAME: 'bucket',
      });
      const deletes: string[] = [];
      const storage = { delete: (k: string) => Promise.resolve(void deletes.push(k)) };
      const sweeper = new TaskRetentionSweeper(
        h.redis,
        s3,
        h.repo,
        h.queues,
        storage as unknown as StorageDriver,
      );
      expect((await sweeper.pass()).mediaExpired).toContain(id);
      expect(deletes).toEqual([]);
      expect(existsSync(h.mediaPath(key))).toBe(true);
      expect((await h.repo.get(id))!.result!.media_deleted_at).toEqual(expect.any(String));
    } finally {
      await h.close();
    }
  });
});
