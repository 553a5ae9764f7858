import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue } from 'bullmq';
import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import type { AppConfig } from '@app/config';
import { groupKey, newTaskId, projectPartitionPrefix, RedisClientFactory } from '@app/redis';
import { CREATE_TASK, QUEUE_SNAPSHOT } from '../libs/tasks/src/records/task.scripts';
import { bullPrefix, QueueName, toBullPriority } from '@app/tasks';
import { cleanRedis, TEST_API_KEY, testConfig } from '@app/testing';
import { TestService } from '../apps/api/test/support/service.harness';
import {
  closeService,
  type BenchPart,
  type BenchRow,
  fmt,
  latencySummary,
  runConcurrent,
} from './common';
import { LoadClient } from './load-client';

const COUNT = Number(process.env.BENCH_SUBMIT_COUNT ?? 5000);
const LEVELS = [1, 16, 64];

const BODY = JSON.stringify({
  project_id: 'bench_project',
  task_type: 'generate_image',
  task_data: {
    character_description: 'Detective in 1920s noir style',
    pose: 'standing_confident',
    lighting: 'dramatic_shadow',
  },
  priority: 2,
  metadata: { user_id: 'bench', agent_id: 'bench' },
});

interface Bare {
  url: string;
  close(): Promise<void>;
}

/**
 * The floor: node:http + BullMQ doing the Redis work of our submit — the per-key rate-limit
 * counter (the same script), the queue snapshot (backlog check and queue position) and the same
 * record-creating script, and Queue.add with the same options — with no framework, validation,
 * auth or logging.
 */
async function startBare(config: AppConfig): Promise<Bare> {
  const prefix = config.redis.prefix;
  const connections = new RedisClientFactory(config);
  const redis = connections.create('bench-bare', { commandTimeoutMs: 10_000 });
  redis.defineCommand('benchCreateTask', { numberOfKeys: 2, lua: CREATE_TASK });
  redis.defineCommand('benchQueueSnapshot', { numberOfKeys: 3, lua: QUEUE_SNAPSHOT });
  const commands = redis as unknown as Record<string, (...a: unknown[]) => Promise<number>>;
  redis.defineCommand('rateLimitHit', {
    numberOfKeys: 2,
    // The library's script text (its constructor would want a connection).
    lua: ThrottlerStorageRedisService.prototype.getScriptSrc(),
  });
  const queueName = QueueName.GpuMedium;
  const queue = new Queue(queueName, {
    connection: connections.bullConnection(),
    prefix: bullPrefix(prefix, queueName),
  });
  const qk = (part: string) => `${bullPrefix(prefix, queueName)}:${queueName}:${part}`;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void (async () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          project_id: string;
          task_type: string;
          task_data: unknown;
          metadata: unknown;
          priority: 1 | 2 | 3;
        };
        await commands.rateLimitHit.call(
          redis,
          `${groupKey(prefix, 'ratelimit:default:submit')}:hits`,
          `${groupKey(prefix, 'ratelimit:default:submit')}:blocked`,
          'default',
          60_000,
          1_000_000,
          60_000,
        );
        const position = await commands.benchQueueSnapshot.call(
          redis,
          qk('wait'),
          qk('prioritized'),
          qk('delayed'),
          toBullPriority(body.priority),
          10_000_000,
        );
        const id = newTaskId(body.project_id);
        const partition = projectPartitionPrefix(prefix, body.project_id);
        const created = new Date();
        const now = created.toISOString();
        const fields = {
          task_id: id,
          project_id: body.project_id,
          task_type: body.task_type,
          status: 'queued',
          priority: String(body.priority),
          task_data: JSON.stringify(body.task_data),
          metadata: JSON.stringify(body.metadata),
          callback_url: '',
          progress: '0',
          current_step: 'waiting_in_queue',
          created_at: now,
          created_ms: String(created.getTime()),
          updated_at: now,
          estimated_duration: '20',
          queue_position: '0',
          queue: queueName,
          job_id: id,
          attempts: '0',
          retries: '0',
        };
        await commands.benchCreateTask.call(
          redis,
          `${partition}:tasks:${id}`,
          `${partition}:none`,
          partition,
          id,
          body.project_id,
          body.task_type,
          created.getTime(),
          now,
          position,
          id, // the create's operation token
          '', // no Idempotency-Key entry
          0,
          ...Object.entries(fields).flat(),
        );
        await queue.add(
          body.task_type,
          { task_id: id, project_id: body.project_id },
          {
            jobId: id,
            priority: toBullPriority(body.priority),
            attempts: 1,
            removeOnComplete: { age: 3600, count: 10_000 },
            removeOnFail: { age: 7 * 24 * 3600 },
          },
        );
        res.writeHead(201, { 'content-type': 'application/json' }).end(
          JSON.stringify({
            task_id: id,
            status: 'queued',
            project_id: body.project_id,
            estimated_duration: 20,
            queue_position: position,
            created_at: now,
          }),
        );
      })().catch((err: Error) => {
        res.writeHead(500).end(err.message);
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await queue.close();
      await connections.close();
    },
  };
}

async function measure(
  url: string,
  headers: Record<string, string>,
  concurrency: number,
): Promise<{ rps: number; p50: number; p95: number; p99: number; errors: number }> {
  const client = new LoadClient(url, headers, concurrency);
  let errors = 0;
  try {
    // Warm-up: connections, JIT, Lua script load.
    await runConcurrent(Math.min(200, COUNT), concurrency, async () => {
      await client.post(BODY);
    });
    const { latencies, seconds } = await runConcurrent(COUNT, concurrency, async () => {
      const { status } = await client.post(BODY);
      if (status !== 201) errors++;
    });
    return { rps: COUNT / seconds, ...latencySummary(latencies), errors };
  } finally {
    client.close();
  }
}

/** Submit throughput of POST /api/v1/tasks/submit vs a bare node:http + BullMQ endpoint. */
export async function submitBench(): Promise<BenchPart> {
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const svc = await new TestService({
    worker: false,
    env: {
      QUEUE_MAX_SIZE: '10000000',
      // The per-key limit stays on (its Redis round trip is part of a submit), never reached.
      RATE_LIMIT_SUBMIT: '1000000',
      LOG_LEVEL: 'warn',
    },
  }).start();
  const barePrefix = `bench-bare-${randomBytes(4).toString('hex')}`;
  const bareConfig = testConfig({ REDIS_PREFIX: barePrefix });
  const bare = await startBare(bareConfig);
  const ours = `http://127.0.0.1:${(svc.api.getHttpServer().address() as AddressInfo).port}/api/v1/tasks/submit`;
  try {
    for (const [i, c] of LEVELS.entries()) {
      // Alternate who goes first so neither always meets the fuller Redis.
      const runBare = () => measure(bare.url, {}, c);
      const runOurs = () => measure(ours, { 'x-api-key': TEST_API_KEY }, c);
      let b, o;
      if (i % 2 === 0) {
        b = await runBare();
        o = await runOurs();
      } else {
        o = await runOurs();
        b = await runBare();
      }
      // A side that answered errors measured something else: stop rather than report it.
      if (b.errors > 0) throw new Error(`the bare endpoint answered ${b.errors} non-201s`);
      const ratio = o.rps / b.rps;
      const lat = (x: typeof o) =>
        `${fmt(x.rps, 0)} req/s, p50/p95/p99 ${fmt(x.p50, 1)}/${fmt(x.p95, 1)}/${fmt(x.p99, 1)} ms`;
      rows.push({ part: 'submit', metric: `bare node:http+BullMQ, c=${c}`, value: lat(b) });
      rows.push({
        part: 'submit',
        metric: `POST /tasks/submit, c=${c}${o.errors ? ` (${o.errors} non-201)` : ''}`,
        value: lat(o),
      });
      rows.push({
        part: 'submit',
        metric: `ours ÷ bare throughput, c=${c}`,
        value: `${fmt(ratio * 100, 0)}%`,
        target: '≥ 70%',
        met: ratio >= 0.7 && o.errors === 0,
      });
    }
    notes.push(
      `submit: ${COUNT} requests per level after 200 warm-up, keep-alive node:http client in the same process as the API (2 cores shared: client, API, Redis). generate_image body; LOG_LEVEL=warn (request logs off).`,
    );
  } finally {
    await bare.close();
    await closeService(svc);
    await cleanRedis(bareConfig);
  }
  return { rows, notes };
}
