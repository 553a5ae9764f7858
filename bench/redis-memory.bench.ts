import type { Redis } from 'ioredis';
import { createRedisClient, projectPartitionPrefix } from '@app/redis';
import { QueueName, TaskQueueService } from '@app/tasks';
import { TEST_API_KEY } from '@app/testing';
import { TestService } from '../apps/api/test/support/service.harness';
import { closeService, type BenchPart, type BenchRow, fmt, runConcurrent, sleep } from './common';
import { LoadClient } from './load-client';
import { BENCH_NOOP_TASK, BenchNoopModule } from './noop.task';

const COUNT = Number(process.env.BENCH_REDIS_MEMORY_COUNT ?? 2000);
const WARMUP = 20;
const PROJECT = 'bench_redis_memory';
const QUEUE = QueueName.CpuIntensive;

/** What a key is, by its name under the benchmark's prefix. */
type Kind =
  | 'record hash'
  | 'progress hash'
  | 'project indexes'
  | 'ended index'
  | 'idempotency entry'
  | 'job hash'
  | 'job logs'
  | 'BullMQ wait/prioritized'
  | 'BullMQ completed set'
  | 'BullMQ events stream'
  | 'other';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const KINDS: Array<[RegExp, Kind]> = [
  [new RegExp(`:bull:\\{[a-z_]+\\}:[a-z_]+:${UUID}(_r\\d+)?$`), 'job hash'],
  [new RegExp(`:bull:\\{[a-z_]+\\}:[a-z_]+:${UUID}(_r\\d+)?:logs$`), 'job logs'],
  [/:bull:\{[a-z_]+\}:[a-z_]+:(wait|prioritized|paused|pc)$/, 'BullMQ wait/prioritized'],
  [/:bull:\{[a-z_]+\}:[a-z_]+:completed$/, 'BullMQ completed set'],
  [/:bull:\{[a-z_]+\}:[a-z_]+:events$/, 'BullMQ events stream'],
  [new RegExp(`:tasks:${UUID}$`), 'record hash'],
  [new RegExp(`:progress:${UUID}$`), 'progress hash'],
  [/:tasks:by_project:/, 'project indexes'],
  [/:ended_tasks$/, 'ended index'],
  [/:idempotency:/, 'idempotency entry'],
];

function kindOf(key: string): Kind {
  return KINDS.find(([re]) => re.test(key))?.[1] ?? 'other';
}

/** Bytes of every key under `prefix` (MEMORY USAGE, all of each value sampled), by kind. */
async function inventory(redis: Redis, prefix: string): Promise<Map<Kind, number>> {
  const sizes = new Map<Kind, number>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    const pipeline = redis.pipeline();
    for (const key of keys) pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', '0');
    const replies = (await pipeline.exec()) ?? [];
    keys.forEach((key, i) => {
      const bytes = Number(replies[i]?.[1] ?? 0);
      sizes.set(kindOf(key), (sizes.get(kindOf(key)) ?? 0) + bytes);
    });
  } while (cursor !== '0');
  return sizes;
}

/** Redis's allocated bytes (INFO used_memory), the median of three reads 200 ms apart. */
async function usedMemory(redis: Redis): Promise<number> {
  const reads: number[] = [];
  for (let i = 0; i < 3; i++) {
    const info = await redis.info('memory');
    reads.push(Number(/^used_memory:(\d+)/m.exec(info)?.[1]));
    await sleep(200);
  }
  return reads.sort((a, b) => a - b)[1];
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const B = (bytes: number) => `${fmt(bytes, 0)} B`;
const MB = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MB`;

/**
 * Redis memory one task costs: COUNT no-op tasks submitted through the API to a paused queue,
 * measured queued, finished with their BullMQ job kept, after the job is removed (what
 * removeOnComplete does after 1 h) and after the progress hash is gone (its 1 h TTL); both as the
 * change of INFO used_memory and as the MEMORY USAGE of every key of the run, by kind.
 */
export async function redisMemoryBench(): Promise<BenchPart> {
  const svc = await new TestService({
    env: {
      WORKER_QUEUES: QUEUE,
      WORKER_CONCURRENCY_CPU_INTENSIVE: '8',
      QUEUE_MAX_SIZE: '10000000',
      RATE_LIMIT_SUBMIT: '1000000',
      LOG_LEVEL: 'warn',
    },
    extraDefinitions: [BENCH_NOOP_TASK],
    extraWorkerModules: [BenchNoopModule],
  }).start();
  // One server (this machine's Redis): SCAN and INFO read that server.
  const redis = createRedisClient(svc.config, 'bench') as Redis;
  const prefix = svc.config.redis.prefix;
  const index = `${projectPartitionPrefix(prefix, PROJECT)}:tasks:by_project:${PROJECT}`;
  const queue = svc.api.get(TaskQueueService).queue(QUEUE);
  const body = JSON.stringify({ project_id: PROJECT, task_type: 'bench_noop', task_data: {} });
  const client = new LoadClient(
    `${svc.http.baseUrl}/tasks/submit`,
    { 'x-api-key': TEST_API_KEY },
    8,
  );
  const submit = async (
    headers: Record<string, string> = {},
    taskData: Record<string, unknown> = {},
  ): Promise<string> => {
    const res =
      headers['idempotency-key'] || Object.keys(taskData).length > 0
        ? await svc.http.post(
            '/tasks/submit',
            { project_id: PROJECT, task_type: 'bench_noop', task_data: taskData },
            { headers },
          )
        : await client.post(body).then((r) => ({ status: r.status, body: JSON.parse(r.body) }));
    if (res.status !== 201) throw new Error(`submit answered ${res.status}`);
    return (res.body as { task_id: string }).task_id;
  };
  const completedTasks = () => redis.zcard(`${index}:status:completed`);
  try {
    // Warm-up, run to the end and their jobs removed: the project record, the queue's own keys,
    // the signing salt and the like exist before the baseline.
    for (let i = 0; i < WARMUP; i++) await submit();
    await until(async () => (await completedTasks()) >= WARMUP, 60_000, 'warm-up tasks');
    await until(async () => (await queue.getCompletedCount()) >= WARMUP, 60_000, 'warm-up jobs');
    await queue.clean(0, 10 * WARMUP, 'completed');
    await queue.pause();
    const idle = await usedMemory(redis);
    const idleKeys = await inventory(redis, prefix);

    const { seconds } = await runConcurrent(COUNT, 8, async () => void (await submit()));
    const queuedMem = await usedMemory(redis);
    const queuedKeys = await inventory(redis, prefix);

    await queue.resume();
    await until(async () => (await completedTasks()) >= WARMUP + COUNT, 180_000, 'tasks to end');
    await until(
      async () => (await queue.getCompletedCount()) >= COUNT,
      60_000,
      'jobs to be completed',
    );
    await sleep(500); // the last runs' heartbeats and bookkeeping
    const keptMem = await usedMemory(redis);
    const keptKeys = await inventory(redis, prefix);

    // What removeOnComplete does an hour later (BullMQ removes a completed job by age).
    await queue.clean(0, 2 * COUNT, 'completed');
    const removedMem = await usedMemory(redis);
    const removedKeys = await inventory(redis, prefix);

    // What the progress hash's 1 h TTL does.
    const ids = await redis.zrange(`${index}:status:completed`, '0', '-1');
    const progress = `${projectPartitionPrefix(prefix, PROJECT)}:progress:`;
    for (let i = 0; i < ids.length; i += 500) {
      await redis.del(...ids.slice(i, i + 500).map((id) => `${progress}${id}`));
    }
    const longMem = await usedMemory(redis);
    const longKeys = await inventory(redis, prefix);

    // One queued submit with an Idempotency-Key: its entry, and its name in the record (next to
    // the average queued record).
    await queue.pause();
    const keyed = await submit({ 'idempotency-key': 'bench-redis-memory-1' });
    const recordBytes = async (id: string) =>
      Number(
        await redis.call(
          'MEMORY',
          'USAGE',
          `${projectPartitionPrefix(prefix, PROJECT)}:tasks:${id}`,
          'SAMPLES',
          '0',
        ),
      );
    const keyedRecord = await recordBytes(keyed);
    const idemKeys = await inventory(redis, prefix);
    // A record with one field over hash-max-listpack-value (64 B by default; most real task_data,
    // every result) is a hashtable, not a listpack.
    const note = { note: 'a storyboard line '.repeat(6) };
    const wide = await recordBytes(await submit({}, note));
    const wideKeyed = await recordBytes(await submit({ 'idempotency-key': 'bench-2' }, note));

    const per = (keys: Map<Kind, number>, kind: Kind, base = idleKeys) =>
      ((keys.get(kind) ?? 0) - (base.get(kind) ?? 0)) / COUNT;
    const perTask = (keys: Map<Kind, number>, kinds: Kind[]) =>
      kinds.reduce((sum, k) => sum + per(keys, k), 0);
    const parts = (keys: Map<Kind, number>, kinds: Kind[]) =>
      kinds
        .filter((k) => Math.abs(per(keys, k)) >= 0.5)
        .map((k) => `${k} ${B(per(keys, k))}`)
        .join(', ');
    const queuedKinds: Kind[] = [
      'record hash',
      'job hash',
      'project indexes',
      'BullMQ wait/prioritized',
    ];
    const finishedKinds: Kind[] = [
      'record hash',
      'progress hash',
      'job hash',
      'job logs',
      'project indexes',
      'ended index',
      'BullMQ completed set',
    ];
    const deltaPer = (mem: number) => (mem - idle) / COUNT;
    const events = (keys: Map<Kind, number>) => keys.get('BullMQ events stream') ?? 0;
    const longTerm = perTask(longKeys, finishedKinds);
    const queuedPer = perTask(queuedKeys, queuedKinds);
    const rows: BenchRow[] = [
      {
        part: 'redis-memory',
        metric: `${COUNT} no-op tasks submitted to a paused queue (${fmt(COUNT / seconds, 0)} submits/s)`,
        value: `used_memory +${MB(queuedMem - idle)}`,
      },
      {
        part: 'redis-memory',
        metric: 'queued: used_memory Δ per task',
        value: B(deltaPer(queuedMem)),
      },
      {
        part: 'redis-memory',
        metric: 'queued: keys per task (MEMORY USAGE)',
        value: `${B(queuedPer)} = ${parts(queuedKeys, queuedKinds)}`,
      },
      {
        part: 'redis-memory',
        metric: 'finished, BullMQ job kept (≤ 1 h): used_memory Δ / keys per task',
        value: `${B(deltaPer(keptMem))} / ${B(perTask(keptKeys, finishedKinds))} = ${parts(keptKeys, finishedKinds)}`,
      },
      {
        part: 'redis-memory',
        metric: 'finished, job removed (progress hash until its 1 h TTL): used_memory Δ / keys',
        value: `${B(deltaPer(removedMem))} / ${B(perTask(removedKeys, finishedKinds))}`,
      },
      {
        part: 'redis-memory',
        metric: 'finished, long term (record + indexes + ended entry): used_memory Δ / keys',
        value: `${B(deltaPer(longMem))} / ${B(longTerm)} = ${parts(longKeys, finishedKinds)}`,
      },
      {
        part: 'redis-memory',
        metric: 'BullMQ events stream of the queue (capped near 10,000 events, not per task)',
        value: `${MB(events(idleKeys))} idle, ${MB(events(queuedKeys))} queued, ${MB(events(keptKeys))} after the run`,
      },
      {
        part: 'redis-memory',
        metric:
          'Idempotency-Key: its entry (IDEMPOTENCY_TTL) + its name in a hashtable record (in a listpack one, which the name turns into a hashtable)',
        value: `${B((idemKeys.get('idempotency entry') ?? 0) - (longKeys.get('idempotency entry') ?? 0))} + ${B(wideKeyed - wide)} (${B(keyedRecord - per(queuedKeys, 'record hash'))})`,
      },
      {
        part: 'redis-memory',
        metric: 'queued record whose task_data is over 64 B (hashtable, as most real submits)',
        value: B(wide),
      },
      {
        part: 'redis-memory',
        metric: 'sizing: 1,000,000 finished tasks kept / 10,000 queued',
        value: `≈ ${MB(longTerm * 1_000_000)} / ≈ ${MB(queuedPer * 10_000)}`,
      },
    ];
    return {
      rows,
      notes: [
        `redis-memory: ${COUNT} no-op tasks of one project (so its indexes are sorted sets of ${COUNT}+ entries, skiplist-encoded; a project's index under 128 entries is a listpack and costs less per entry). A record hash is a listpack while every field is at most hash-max-listpack-value (64 B by default) and a hashtable (about 3×) once one is longer: the queued no-op record is a listpack, a finished one (its result JSON) and most real submits (their task_data) are hashtables. used_memory is the whole Redis's (median of 3 reads; other clients of this Redis add noise); "keys" is MEMORY USAGE … SAMPLES 0 of every key of the run by kind, the events stream left out of the per-task figures. Job removal done with Queue.clean as removeOnComplete would after 1 h; progress hashes deleted as their 1 h TTL would.`,
      ],
    };
  } finally {
    client.close();
    redis.disconnect();
    await closeService(svc);
  }
}
