import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { closeRedisClient, createRedisClient } from '@app/redis';
import { PrivateRedisServer, waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { SHUTDOWN_EXIT_MARGIN_MS } from '../src/runtime/worker-shutdown.service';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from './support/test-sleep.task';
import { WorkerProcess } from './support/worker-process.harness';

const PROJECT = 'redis_faults';

async function get(url: string) {
  const res = await fetch(url);
  return { status: res.status, json: (await res.json()) as Record<string, any> };
}

/**
 * Issue 6: Redis connections dropped (CLIENT KILL) or Redis restarted under a running API and
 * worker. A private redis-server (append-only file, fsync always, so a restart keeps its data)
 * on a free port: killing every client there touches no other test.
 */
describe('Redis faults: connections killed, Redis restarted', () => {
  const redisServer = new PrivateRedisServer({ persistent: true });
  let service: TestService;

  const startRedis = () => redisServer.start();
  const stopRedis = () => redisServer.stop();

  beforeAll(async () => {
    await startRedis();
    service = new TestService({
      extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
      extraWorkerModules: [TestProcessorsModule],
      workerHealth: true,
      env: { REDIS_URL: redisServer.url, WORKER_CONCURRENCY_CPU_INTENSIVE: '2' },
    });
    await service.start();
  });

  afterAll(async () => {
    await service?.close();
    await stopRedis();
  });

  beforeEach(() => testSleepLog.reset());

  async function submit(duration_ms: number): Promise<string> {
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_sleep',
      task_data: { duration_ms, steps: 10 },
    });
    expect(res.status).toBe(201);
    return res.body.task_id as string;
  }

  async function allEnded(ids: string[], timeoutMs = 40_000) {
    return waitFor(
      async () => {
        const statuses = await Promise.all(
          ids.map(async (id) => (await service.http.get(`/tasks/${id}/status`)).body.status),
        );
        return statuses.every((s) => ['completed', 'failed', 'cancelled'].includes(s))
          ? statuses
          : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `${ids.length} tasks to end` },
    );
  }

  const apiReady = () => service.http.get('/health/ready', { key: null });
  const workerReady = () => get(`${service.workerHealthUrl}/health/ready`);

  it('CLIENT KILL of every connection mid-run: both apps reconnect, every task completes once', async () => {
    const before = await Promise.all([1500, 1500, 1500, 1500].map((d) => submit(d)));
    await waitFor(async () => (testSleepLog.runs.size >= 2 ? true : undefined), {
      what: 'two runs to start',
    });

    const admin = createRedisClient(service.config, 'admin');
    const killed =
      Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'normal')) +
      Number(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'));
    await closeRedisClient(admin);
    // The API's and the worker's command, BullMQ and pub/sub connections.
    expect(killed).toBeGreaterThanOrEqual(5);

    const after = await Promise.all([500, 500].map((d) => submit(d)));
    const ids = [...before, ...after];
    expect(await allEnded(ids)).toEqual(ids.map(() => 'completed'));
    expect(ids.map((id) => testSleepLog.runs.get(id))).toEqual(ids.map(() => 1));
    expect((await apiReady()).status).toBe(200);
    expect((await workerReady()).status).toBe(200);
  });

  it('Redis restart mid-run: readiness reports the outage, then recovers; no accepted task is lost', async () => {
    const before = await Promise.all([3000, 3000, 300, 300, 300].map((d) => submit(d)));
    await waitFor(async () => (testSleepLog.runs.size >= 2 ? true : undefined), {
      what: 'two runs to start',
    });

    await stopRedis();
    const down = await waitFor(
      async () => {
        const [api, worker] = await Promise.all([apiReady(), workerReady()]);
        return api.status === 503 && worker.status === 503 ? { api, worker } : undefined;
      },
      { timeoutMs: 5000, what: 'both apps not ready' },
    );
    expect(down.api.body.details.redis.status).toBe('down');
    expect(down.worker.json.details.redis.status).toBe('down');
    // Liveness does not follow Redis: nobody should restart the apps for it.
    expect((await service.http.get('/health/live', { key: null })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1000));

    await startRedis();
    await waitFor(
      async () => {
        const [api, worker] = await Promise.all([apiReady(), workerReady()]);
        return api.status === 200 && worker.status === 200 ? true : undefined;
      },
      { timeoutMs: 15_000, what: 'both apps ready again' },
    );
    const after = await submit(300);
    const ids = [...before, after];
    expect(await allEnded(ids)).toEqual(ids.map(() => 'completed'));
  });
});

describe('worker process shutdown without Redis', () => {
  it('SIGTERM while Redis is away: the process still exits within grace + 5 s', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-gone-'));
    const redis = new PrivateRedisServer();
    await redis.start();
    const worker = new WorkerProcess(
      {
        REDIS_URL: redis.url,
        WORKER_QUEUES: 'cpu_intensive',
        SHUTDOWN_GRACE: '1',
      },
      path.join(dir, 'evidence.log'),
    );
    try {
      await worker.ready();
      await redis.stop();
      // Let every client notice the outage (they now retry and queue commands).
      await new Promise((r) => setTimeout(r, 500));
      const signalled = Date.now();
      worker.child.kill('SIGTERM');
      const exit = await worker.exited;
      // Closing connections to a Redis that is gone cannot finish: the hard bound ends it.
      expect(exit.signal).toBeNull();
      expect(exit.at - signalled).toBeLessThan(1000 + SHUTDOWN_EXIT_MARGIN_MS + 1500);
    } finally {
      await worker.kill();
      await redis.stop();
    }
  });
});
