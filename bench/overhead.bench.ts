import { randomBytes } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import {
  createRedisClient,
  projectPartitionPrefix,
  RedisClientFactory,
  taskPartitionPrefix,
} from '@app/redis';
import { QueueName, TaskQueueService } from '@app/tasks';
import { cleanRedis, TEST_API_KEY, testConfig } from '@app/testing';
import { TestService } from '../apps/api/test/support/service.harness';
import {
  closeService,
  type BenchPart,
  type BenchRow,
  fmt,
  latencySummary,
  sleep,
  withTimeout,
} from './common';
import { LoadClient } from './load-client';
import { BENCH_NOOP_TASK, BenchNoopModule } from './noop.task';

const LATENCY_COUNT = Number(process.env.BENCH_OVERHEAD_LATENCY_COUNT ?? 200);
const DRAIN_COUNT = Number(process.env.BENCH_OVERHEAD_DRAIN_COUNT ?? 500);
const CONCURRENCIES = [1, 8];
/** Both sides poll Redis for completion at this interval (same resolution for both). */
const POLL_MS = 1;
/** Plain BullMQ's job options: those TaskQueueService.enqueue gives ours, less job id and priority. */
export const JOB_OPTS = {
  attempts: 1,
  removeOnComplete: { age: 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600 },
};

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

interface Figures {
  p50: number;
  p95: number;
  p99: number;
  drain: Record<number, number>;
}

/** Medians of where our round trip goes, from the record's own timestamps. */
let breakdown = '';

/** Our service: API submit → worker → `completed` in the task record. */
async function ours(): Promise<Figures> {
  const drain: Record<number, number> = {};
  let lat: number[] = [];
  for (const c of CONCURRENCIES) {
    const svc = await new TestService({
      env: {
        WORKER_QUEUES: QueueName.CpuIntensive,
        WORKER_CONCURRENCY_CPU_INTENSIVE: String(c),
        QUEUE_MAX_SIZE: '10000000',
        // The per-key limit stays on (its Redis round trip is part of a submit), never reached.
        RATE_LIMIT_SUBMIT: '1000000',
        LOG_LEVEL: 'warn',
      },
      extraDefinitions: [BENCH_NOOP_TASK],
      extraWorkerModules: [BenchNoopModule],
    }).start();
    const redis = createRedisClient(svc.config, 'bench');
    const prefix = svc.config.redis.prefix;
    const body = JSON.stringify({
      project_id: 'bench_noop',
      task_type: 'bench_noop',
      task_data: {},
    });
    // The same keep-alive node:http client as the submit benchmark (fetch adds ~2 ms a call).
    const client = new LoadClient(
      `${svc.http.baseUrl}/tasks/submit`,
      {
        'x-api-key': TEST_API_KEY,
      },
      1,
    );
    const submit = async (): Promise<string> => {
      const res = await client.post(body);
      if (res.status !== 201) throw new Error(`submit answered ${res.status}`);
      return (JSON.parse(res.body) as { task_id: string }).task_id;
    };
    try {
      if (c === 1) {
        // Round trip: one task at a time, submit over HTTP until the record says completed.
        const one = async () => {
          const t0 = performance.now();
          const id = await submit();
          const submitted = performance.now() - t0;
          const key = `${taskPartitionPrefix(prefix, id)}:tasks:${id}`;
          await until(
            async () => (await redis.hget(key, 'status')) === 'completed',
            10_000,
            `task ${id}`,
          );
          const total = performance.now() - t0;
          const [created, started, completed] = await redis.hmget(
            key,
            'created_ms',
            'started_at',
            'completed_at',
          );
          const s = Date.parse(started ?? '');
          return {
            total,
            submitted,
            toStart: s - Number(created),
            run: Date.parse(completed ?? '') - s,
          };
        };
        for (let i = 0; i < 20; i++) await one(); // warm-up
        const runs: Array<Awaited<ReturnType<typeof one>>> = [];
        for (let i = 0; i < LATENCY_COUNT; i++) runs.push(await one());
        lat = runs.map((r) => r.total);
        const med = (f: (r: (typeof runs)[number]) => number) => latencySummary(runs.map(f)).p50;
        breakdown = `HTTP submit ${fmt(med((r) => r.submitted))} ms, created→started ${fmt(
          med((r) => r.toStart),
          0,
        )} ms, started→completed ${fmt(
          med((r) => r.run),
          0,
        )} ms (record timestamps, ms resolution)`;
      }
      // Drain: queue paused, DRAIN_COUNT submitted, then resumed and timed to the last completion.
      const queue = svc.api.get(TaskQueueService).queue(QueueName.CpuIntensive);
      await queue.pause();
      for (let i = 0; i < DRAIN_COUNT; i++) await submit();
      // The project's index of completed tasks (per project, so it stays one Redis slot).
      const done = `${projectPartitionPrefix(prefix, 'bench_noop')}:tasks:by_project:bench_noop:status:completed`;
      const before = await redis.zcard(done);
      const t0 = performance.now();
      await queue.resume();
      await until(
        async () => (await redis.zcard(done)) >= before + DRAIN_COUNT,
        120_000,
        'our drain',
      );
      drain[c] = DRAIN_COUNT / ((performance.now() - t0) / 1000);
    } finally {
      client.close();
      redis.disconnect();
      await closeService(svc);
      await sleep(200);
      await cleanRedis(svc.config);
    }
  }
  return { ...latencySummary(lat), drain };
}

/** Plain BullMQ on the same Redis: Queue.add and a no-op Worker, nothing else. */
async function plain(): Promise<Figures> {
  const prefix = `bench-plain-${randomBytes(4).toString('hex')}`;
  const config = testConfig({ REDIS_PREFIX: prefix });
  const connections = new RedisClientFactory(config);
  const drain: Record<number, number> = {};
  let lat: number[] = [];
  const redis = connections.create('bench');
  try {
    for (const c of CONCURRENCIES) {
      const name = `noop_c${c}`;
      const queue = new Queue(name, { connection: connections.bullConnection(), prefix });
      const worker = new Worker(name, () => Promise.resolve({}), {
        connection: connections.bullConnection(),
        prefix,
        concurrency: c,
      });
      await worker.waitUntilReady();
      try {
        if (c === 1) {
          const one = async (i: number) => {
            const t0 = performance.now();
            const job = await queue.add('noop', { i }, JOB_OPTS);
            await until(
              async () => (await redis.hexists(`${prefix}:${name}:${job.id}`, 'finishedOn')) === 1,
              10_000,
              `job ${job.id}`,
            );
            return performance.now() - t0;
          };
          for (let i = 0; i < 20; i++) await one(i);
          lat = [];
          for (let i = 0; i < LATENCY_COUNT; i++) lat.push(await one(i));
        }
        await queue.pause();
        for (let i = 0; i < DRAIN_COUNT; i++) await queue.add('noop', { i }, JOB_OPTS);
        const before = await queue.getCompletedCount();
        const t0 = performance.now();
        await queue.resume();
        await until(
          async () => (await queue.getCompletedCount()) >= before + DRAIN_COUNT,
          120_000,
          'plain drain',
        );
        drain[c] = DRAIN_COUNT / ((performance.now() - t0) / 1000);
      } finally {
        await worker.close();
        await queue.close();
      }
    }
  } finally {
    await connections.close();
    await cleanRedis(config);
  }
  return { ...latencySummary(lat), drain };
}

/** No-op orchestration overhead: our end-to-end latency and drain rate vs plain BullMQ. */
export async function overheadBench(): Promise<BenchPart> {
  const p = await withTimeout(plain(), 180_000, 'plain BullMQ overhead');
  const o = await withTimeout(ours(), 240_000, 'our overhead');
  const rows: BenchRow[] = [];
  const l = (x: Figures) => `p50/p95/p99 ${fmt(x.p50)}/${fmt(x.p95)}/${fmt(x.p99)} ms`;
  rows.push({ part: 'overhead', metric: 'plain BullMQ round trip (add → completed)', value: l(p) });
  rows.push({ part: 'overhead', metric: 'ours, no-op task (submit → completed)', value: l(o) });
  rows.push({
    part: 'overhead',
    metric: 'ours ÷ plain, p50 round trip',
    value: `${fmt(o.p50 / p.p50)}×`,
    target: '≤ 2×',
    met: o.p50 / p.p50 <= 2,
  });
  rows.push({ part: 'overhead', metric: 'ours, p50 of each stage', value: breakdown });
  for (const c of CONCURRENCIES) {
    rows.push({
      part: 'overhead',
      metric: `drain, one worker, concurrency ${c}: ours / plain`,
      value: `${fmt(o.drain[c], 0)} / ${fmt(p.drain[c], 0)} tasks/s (${fmt((o.drain[c] / p.drain[c]) * 100, 0)}%)`,
    });
  }
  return {
    rows,
    notes: [
      `overhead: ${LATENCY_COUNT} sequential round trips after 20 warm-up; both sides poll Redis every ${POLL_MS} ms for completion (our task record's status, BullMQ's finishedOn). Ours includes the HTTP submit (keep-alive node:http client), validation, record, run bookkeeping, progress and storing the 2-byte output; drain of ${DRAIN_COUNT} tasks from a paused queue, worker in the same process as the API.`,
    ],
  };
}
