import { Queue } from 'bullmq';
import { RedisClientFactory } from '@app/redis';
import { bullPrefix } from '@app/tasks';
import { PrivateRedisServer, TEST_API_KEY, waitFor } from '@app/testing';
import { WEBHOOKS_QUEUE } from '@app/webhooks';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from '../../worker/test/support/test-sleep.task';
import { TestService } from './support/service.harness';

const PROJECT = 'ops_proj';

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await fetch(url, { headers });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : null;
  return { status: res.status, text, json, headers: res.headers };
}

/** The value of one Prometheus sample line, e.g. `tasks_total{...} 1`. */
function sample(metrics: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of metrics.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return undefined;
}

describe('operations: probes, metrics, workers status, Bull Board', () => {
  const service = new TestService({
    extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
    extraWorkerModules: [TestProcessorsModule],
    workerHealth: true,
    // A timer beat would hide whether starts and ends are written at once: make it rare.
    env: { WORKER_HEARTBEAT_INTERVAL: '60' },
  });
  const root = () => service.http.baseUrl.replace(/\/api\/v1$/, '');

  beforeAll(() => service.start());
  afterAll(() => service.close());
  beforeEach(() => testSleepLog.reset());

  const submit = async (duration_ms: number) => {
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_sleep',
      task_data: { duration_ms, steps: 10 },
    });
    expect(res.status).toBe(201);
    return res.body.task_id as string;
  };
  const until = (id: string, status: string) =>
    waitFor(
      async () => {
        const s = (await service.http.get(`/tasks/${id}/status`)).body;
        return s.status === status ? s : undefined;
      },
      { timeoutMs: 20_000, what: `task ${id} ${status}` },
    );

  it('answers the API probes without an API key', async () => {
    const live = await service.http.get('/health/live', { key: null });
    expect(live.status).toBe(200);
    expect(live.body).toMatchObject({ status: 'ok', details: {} });
    const ready = await service.http.get('/health/ready', { key: null });
    expect(ready.status).toBe(200);
    expect(ready.body.details).toMatchObject({
      redis: { status: 'up' },
      storage: { status: 'up', driver: 'local' },
    });
    const health = await service.http.get('/health', { key: null });
    expect(health.status).toBe(200);
    // The worker runs tfjs on wasm: a worker, but no GPU, and the API says so.
    expect(health.body.details.workers).toMatchObject({
      status: 'up',
      count: 1,
      backends: ['wasm'],
      gpu: false,
    });
    expect(health.body.details.gpu).toEqual({
      status: 'up',
      gpu: 'none',
      gpu_workers: 0,
      message: 'no worker runs on a GPU (backends: wasm)',
    });
  });

  it('answers GET /health at the root as seed 000 does, with the body of /api/v1/health', async () => {
    const rootHealth = await get(`${root()}/health`);
    expect(rootHealth.status).toBe(200);
    expect(rootHealth.headers.get('content-type')).toContain('application/json');
    const prefixed = await service.http.get('/health', { key: null });
    expect(rootHealth.json).toMatchObject({ status: 'ok', info: { redis: { status: 'up' } } });
    expect(Object.keys(rootHealth.json.details).sort()).toEqual(
      Object.keys(prefixed.body.details).sort(),
    );
    expect(rootHealth.json.details.storage).toEqual(prefixed.body.details.storage);
    // A query string is kept; other methods and longer paths are not health.
    expect((await get(`${root()}/health?verbose=1`)).status).toBe(200);
    expect((await fetch(`${root()}/health`, { method: 'POST' })).status).toBe(404);
    expect((await get(`${root()}/healthz`)).status).toBe(404);
  });

  it('answers the worker probes on its own port, with the GPU state', async () => {
    const live = await get(`${service.workerHealthUrl}/health/live`);
    expect(live.status).toBe(200);
    expect(live.json).toMatchObject({ status: 'ok' });
    const ready = await get(`${service.workerHealthUrl}/health/ready`);
    expect(ready.status).toBe(200);
    expect(ready.json.details).toMatchObject({
      worker: { status: 'up', phase: 'running' },
      redis: { status: 'up' },
      gpu: { status: 'up', backend: 'wasm', gpu: 'no GPU, backend wasm' },
    });
    expect((await get(`${service.workerHealthUrl}/nope`)).status).toBe(404);
  });

  it('counts a completed task in the worker metrics, not in the API ones', async () => {
    const id = await submit(200);
    await until(id, 'completed');
    const labels = { project_id: PROJECT, task_type: 'test_sleep' };
    const worker = await waitFor(
      async () => {
        const m = await get(`${service.workerHealthUrl}/metrics`);
        return sample(m.text, 'tasks_total', { ...labels, status: 'completed' }) ? m : undefined;
      },
      { timeoutMs: 5000, what: 'tasks_total' },
    );
    expect(worker.headers.get('content-type')).toContain('text/plain');
    expect(sample(worker.text, 'tasks_total', { ...labels, status: 'completed' })).toBe(1);
    expect(sample(worker.text, 'task_duration_seconds_count', labels)).toBe(1);
    const sum = sample(worker.text, 'task_duration_seconds_sum', labels)!;
    expect(sum).toBeGreaterThan(0.15);
    expect(sample(worker.text, 'task_duration_seconds_bucket', { ...labels, le: '0.5' })).toBe(1);
    expect(sample(worker.text, 'task_queue_wait_seconds_count', { task_type: 'test_sleep' })).toBe(
      1,
    );
    expect(sample(worker.text, 'task_attempts_total', { task_type: 'test_sleep' })).toBe(1);
    expect(sample(worker.text, 'tfjs_tensors', { backend: 'wasm' })).toBeGreaterThanOrEqual(0);
    expect(sample(worker.text, 'memory_usage_bytes', { project_id: PROJECT })).toBeGreaterThan(0);
    expect(worker.text).toContain('# TYPE webhook_deliveries_total counter');
    expect(worker.text).toContain('# TYPE gpu_utilization_percent gauge');

    const api = await get(`${root()}/metrics`);
    expect(api.status).toBe(200);
    expect(api.text).not.toContain('tasks_total{');
    for (const queue of ['gpu_heavy', 'gpu_medium', 'cpu_intensive']) {
      expect(sample(api.text, 'queue_depth', { queue, state: 'prioritized' })).toBe(0);
    }
    expect(sample(api.text, 'queue_depth', { queue: 'cpu_intensive', state: 'completed' })).toBe(1);
  });

  it('lists the running worker, active with its task (slots to spare), then idle', async () => {
    const id = await submit(3000);
    const busy = await waitFor(
      async () => {
        const { body } = await service.http.get('/workers/status');
        const me = body.workers.find((w: any) => w.worker_id === service.config.worker.id);
        // Active with this task (an earlier test's run may still be reported for up to 100 ms).
        return me?.status === 'active' && me.current_task_id === id ? { body, me } : undefined;
      },
      { timeoutMs: 5000, what: 'worker active' },
    );
    expect(busy.me).toMatchObject({
      worker_type: ['gpu_heavy', 'gpu_medium', 'cpu_intensive'],
      current_task_id: id,
      gpu_utilization: 0,
      backend: 'wasm',
    });
    expect(busy.me.memory_usage).toBeGreaterThan(0);
    expect(Date.now() - Date.parse(busy.me.last_heartbeat)).toBeLessThan(3000);
    expect(busy.body).toMatchObject({ total_workers: 1, active_workers: 1 });
    const before = busy.me.tasks_completed as number;

    await until(id, 'completed');
    // The end of a run is written at once, not at the next timer beat (60 s away).
    const idle = await waitFor(
      async () => {
        const { body } = await service.http.get('/workers/status');
        return body.workers[0]?.status === 'idle' ? body.workers[0] : undefined;
      },
      { timeoutMs: 2000, intervalMs: 20, what: 'worker idle' },
    );
    expect(idle).toMatchObject({ current_task_id: null, tasks_completed: before + 1 });
  });

  it('keeps Bull Board behind the API key, read-only, with the task queues and webhooks', async () => {
    const denied = await get(`${root()}/admin/queues`);
    expect(denied.status).toBe(401);
    expect(denied.json).toMatchObject({ message: 'API key required in X-API-Key header' });
    expect((await get(`${root()}/admin/queues/api/queues`)).status).toBe(401);
    expect((await get(`${root()}/admin/queues`, { 'x-api-key': 'wrong' })).status).toBe(401);

    const page = await get(`${root()}/admin/queues`, { 'x-api-key': TEST_API_KEY });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const api = await get(`${root()}/admin/queues/api/queues`, { 'x-api-key': TEST_API_KEY });
    expect(api.status).toBe(200);
    const queues = api.json.queues as Array<{ name: string; readOnlyMode: boolean }>;
    expect(queues.map((q) => q.name).sort()).toEqual([
      'cpu_intensive',
      'gpu_heavy',
      'gpu_medium',
      'webhooks',
    ]);
    expect(queues.every((q) => q.readOnlyMode)).toBe(true);

    // The board reads the queue the workers deliver from (same prefix): a job there shows.
    const webhooks = new Queue(WEBHOOKS_QUEUE, {
      connection: service.api.get(RedisClientFactory).bullConnection(),
      prefix: bullPrefix(service.config.redis.prefix, WEBHOOKS_QUEUE),
    });
    try {
      const job = await webhooks.add('deliver', { later: true }, { delay: 3_600_000 });
      const board = await get(`${root()}/admin/queues/api/queues`, { 'x-api-key': TEST_API_KEY });
      const shown = board.json.queues.find((q: { name: string }) => q.name === WEBHOOKS_QUEUE);
      expect(shown.counts).toMatchObject({ delayed: 1 });
      await job.remove();
    } finally {
      await webhooks.close();
    }
  });
});

describe('operations: readiness follows Redis without a restart', () => {
  const redis = new PrivateRedisServer();
  const startRedis = () => redis.start();
  const stopRedis = () => redis.stop();
  let service: TestService;

  beforeAll(async () => {
    await startRedis();
    service = new TestService({
      env: { REDIS_URL: redis.url },
      workerHealth: true,
    });
    await service.start();
  });
  afterAll(async () => {
    await service?.close();
    await stopRedis();
  });

  it('turns 503 within its bound when Redis stops and 200 when it returns', async () => {
    const apiReady = () => service.http.get('/health/ready', { key: null });
    const workerReady = () => get(`${service.workerHealthUrl}/health/ready`);
    expect((await apiReady()).status).toBe(200);
    expect((await workerReady()).status).toBe(200);

    await stopRedis();
    const stopped = Date.now();
    const down = await waitFor(
      async () => {
        const res = await apiReady();
        return res.status === 503 ? res : undefined;
      },
      { timeoutMs: 5000, what: 'API ready 503' },
    );
    expect(down.body.details.redis).toMatchObject({ status: 'down' });
    expect(down.body.details.storage).toMatchObject({ status: 'up' });
    // Each answer, even while Redis is away, comes within the probe's bound.
    const t0 = Date.now();
    const workerDown = await workerReady();
    expect(Date.now() - t0).toBeLessThan(2500);
    expect(workerDown.status).toBe(503);
    expect(workerDown.json.details.redis.status).toBe('down');
    expect(Date.now() - stopped).toBeLessThan(5000);
    // Liveness does not depend on Redis.
    expect((await service.http.get('/health/live', { key: null })).status).toBe(200);
    expect((await get(`${service.workerHealthUrl}/health/live`)).status).toBe(200);

    await startRedis();
    await waitFor(async () => ((await apiReady()).status === 200 ? true : undefined), {
      timeoutMs: 15_000,
      what: 'API ready again',
    });
    await waitFor(async () => ((await workerReady()).status === 200 ? true : undefined), {
      timeoutMs: 15_000,
      what: 'worker ready again',
    });
  });
});
