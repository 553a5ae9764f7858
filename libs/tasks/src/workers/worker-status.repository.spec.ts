import type { AppConfig } from '@app/config';
import { redisKey } from '@app/redis';
import { cleanRedis, testConfig } from '@app/testing';
import { Redis } from 'ioredis';
import {
  WORKER_TTL_SECONDS,
  type WorkerStatusRecord,
  WorkerStatusRepository,
} from './worker-status.repository';

describe('WorkerStatusRepository (real Redis)', () => {
  let config: AppConfig;
  let redis: Redis;
  let repo: WorkerStatusRepository;

  const record = (over: Partial<WorkerStatusRecord> = {}): WorkerStatusRecord => ({
    worker_id: 'w-1',
    worker_type: 'gpu_medium,cpu_intensive',
    status: 'busy',
    current_task_id: 't1',
    current_task_ids: ['t1', 't2'],
    gpu_utilization: 0.4,
    memory_usage: 123_456_789,
    tasks_completed: 7,
    last_heartbeat: new Date().toISOString(),
    backend: 'wasm',
    started_at: '2026-01-01T00:00:00.000Z',
    ...over,
  });

  beforeEach(async () => {
    config = testConfig();
    redis = new Redis(config.redis.url, { maxRetriesPerRequest: 2 });
    repo = new WorkerStatusRepository(redis, config);
  });

  afterEach(async () => {
    await cleanRedis(config);
    redis.disconnect();
  });

  it('writes a beat that lists back as written, with the TTL set', async () => {
    const beat = record();
    await repo.beat(beat);
    expect(await repo.list()).toEqual([beat]);
    const ttl = await redis.ttl(redisKey(config.redis.prefix, 'workers', 'w-1'));
    expect(ttl).toBeGreaterThan(WORKER_TTL_SECONDS - 5);
    expect(ttl).toBeLessThanOrEqual(WORKER_TTL_SECONDS);

    // The next beat replaces every field; idle has no current task.
    const idle = record({ status: 'idle', current_task_id: null, current_task_ids: [] });
    await repo.beat(idle);
    expect(await repo.list()).toEqual([idle]);
  });

  it('lists the most recent first and drops workers silent for longer than the TTL', async () => {
    const now = Date.now();
    const at = (ms: number) => new Date(ms).toISOString();
    await repo.beat(record({ worker_id: 'stale', last_heartbeat: at(now - 400_000) }));
    await repo.beat(record({ worker_id: 'old', last_heartbeat: at(now - 60_000) }));
    expect((await repo.list()).map((w) => w.worker_id)).toEqual(['old']);
    await repo.beat(record({ worker_id: 'new', last_heartbeat: at(now) }));
    expect((await repo.list()).map((w) => w.worker_id)).toEqual(['new', 'old']);
    // A beat prunes index entries older than the TTL.
    const index = redisKey(config.redis.prefix, 'workers', 'active');
    expect(await redis.zrange(index, '0', '-1')).toEqual(['old', 'new']);
  });

  it('sends a beat as one command in one socket write', async () => {
    await redis.ping();
    const stream = (redis as unknown as { stream: { write: (...a: unknown[]) => boolean } }).stream;
    const write = stream.write.bind(stream);
    const chunks: string[] = [];
    stream.write = (chunk: unknown, ...rest: unknown[]) => {
      chunks.push(String(chunk));
      return write(chunk, ...rest);
    };
    await repo.beat(record());
    await repo.beat(record({ status: 'idle' }));
    stream.write = write;
    // Each beat is one EVALSHA (the first may add one EVAL if Redis lacks the script).
    expect(chunks.length).toBeGreaterThanOrEqual(2);
    expect(chunks.length).toBeLessThanOrEqual(3);
    for (const chunk of chunks) expect(chunk.match(/^\*\d+\r\n/gm)).toHaveLength(1);
    expect((await repo.list())[0].status).toBe('idle');
  });

  it('removes a worker', async () => {
    await repo.beat(record());
    await repo.remove('w-1');
    expect(await repo.list()).toEqual([]);
    expect(await redis.exists(redisKey(config.redis.prefix, 'workers', 'w-1'))).toBe(0);
  });
});
