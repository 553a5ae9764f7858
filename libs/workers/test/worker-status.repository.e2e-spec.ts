import type { AppConfig } from '@app/config';
import { groupKey } from '@app/redis';
import { cleanRedis, testConfig } from '@app/testing';
import { Redis } from 'ioredis';
import {
  OFFLINE_AFTER_MISSED_BEATS,
  WORKER_TTL_SECONDS,
  type WorkerBeat,
  WorkerStatusRepository,
} from '../src/worker-status.repository';

describe('WorkerStatusRepository (real Redis)', () => {
  let config: AppConfig;
  let redis: Redis;
  let repo: WorkerStatusRepository;

  const record = (over: Partial<WorkerBeat> = {}): WorkerBeat => ({
    worker_id: 'w-1',
    worker_type: ['gpu_medium', 'cpu_intensive'],
    status: 'busy',
    current_task_id: 't1',
    current_task_ids: ['t1', 't2'],
    gpu_utilization: 0.4,
    memory_usage: 123_456_789,
    tasks_completed: 7,
    last_heartbeat: new Date().toISOString(),
    backend: 'wasm',
    device: 'cpu',
    gpus: [],
    models: [],
    heartbeat_interval: 10,
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
    const ttl = await redis.ttl(groupKey(config.redis.prefix, 'workers', 'w-1'));
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
    const index = groupKey(config.redis.prefix, 'workers', 'active');
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

  it('reads a worker silent for more than three of its intervals as offline, running nothing', async () => {
    const now = Date.now();
    const at = (ms: number) => new Date(ms).toISOString();
    const interval = 10;
    const limit = OFFLINE_AFTER_MISSED_BEATS * interval * 1000;
    await repo.beat(record({ worker_id: 'late', last_heartbeat: at(now - limit + 2000) }));
    await repo.beat(
      record({ worker_id: 'gone', last_heartbeat: at(now - limit - 2000), tasks_completed: 9 }),
    );
    // Each worker is judged by its own interval: 60 s beats are not late after 32 s.
    await repo.beat(
      record({ worker_id: 'slow', heartbeat_interval: 60, last_heartbeat: at(now - limit - 2000) }),
    );
    const byId = Object.fromEntries((await repo.list(now)).map((w) => [w.worker_id, w]));
    expect(byId.late).toMatchObject({ status: 'busy', current_task_id: 't1' });
    expect(byId.slow).toMatchObject({ status: 'busy' });
    expect(byId.gone).toMatchObject({
      status: 'offline',
      current_task_id: null,
      current_task_ids: [],
      tasks_completed: 9,
      worker_type: ['gpu_medium', 'cpu_intensive'],
    });
    // Still listed until the 5-minute record expires.
    expect(await repo.list(now + (WORKER_TTL_SECONDS - 40) * 1000)).toHaveLength(3);
    expect(await repo.list(now + WORKER_TTL_SECONDS * 1000)).toEqual([]);
  });

  it('keeps the GPUs a beat reports, and reads records of older workers', async () => {
    const gpus = [
      {
        gpu_id: '0',
        name: 'NVIDIA L4',
        memory_used_bytes: 2 ** 30,
        memory_total_bytes: 24 * 2 ** 30,
        utilization_percent: 40,
      },
    ];
    await repo.beat(record({ device: 'gpu', backend: 'tensorflow', gpus }));
    expect((await repo.list())[0]).toMatchObject({ device: 'gpu', gpus });
    // Written before worker_type was a list and the interval was kept: read with the config's.
    await redis.hdel(groupKey(config.redis.prefix, 'workers', 'w-1'), 'heartbeat_interval', 'gpus');
    await redis.hset(groupKey(config.redis.prefix, 'workers', 'w-1'), 'worker_type', 'gpu_heavy');
    expect((await repo.list())[0]).toMatchObject({
      worker_type: ['gpu_heavy'],
      heartbeat_interval: config.worker.heartbeatIntervalSeconds,
      gpus: [],
    });
  });

  it('removes a worker', async () => {
    await repo.beat(record());
    await repo.remove('w-1');
    expect(await repo.list()).toEqual([]);
    expect(await redis.exists(groupKey(config.redis.prefix, 'workers', 'w-1'))).toBe(0);
  });
});
