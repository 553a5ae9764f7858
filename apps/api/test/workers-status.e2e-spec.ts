import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRedisClient } from '@app/redis';
import { waitFor } from '@app/testing';
import { WorkerStatusRepository } from '@app/workers';
import { WorkerProcess } from '../../worker/test/support/worker-process.harness';
import { TEST_SLEEP_TASK } from '../../worker/test/support/test-sleep.task';
import { TestService } from './support/service.harness';

/**
 * GET /api/v1/workers/status as an operator sees it while a real worker process (its own
 * process, so it can be SIGKILLed) works, then dies without a word: idle, active, busy, offline.
 */
describe('workers status: seed 001 WorkerStatus of a real worker process', () => {
  let service: TestService;
  let worker: WorkerProcess | undefined;
  const WORKER_ID = `status-worker-${randomBytes(3).toString('hex')}`;

  beforeAll(async () => {
    const env = {
      REDIS_PREFIX: `test-${randomBytes(4).toString('hex')}`,
      STORAGE_LOCAL_DIR: mkdtempSync(path.join(os.tmpdir(), 'ams-media-')),
      WORKER_HEARTBEAT_INTERVAL: '1',
    };
    service = new TestService({ worker: false, extraDefinitions: [TEST_SLEEP_TASK], env });
    await service.start();
    worker = new WorkerProcess(
      {
        ...env,
        WORKER_ID,
        WORKER_QUEUES: 'cpu_intensive',
        WORKER_CONCURRENCY_CPU_INTENSIVE: '2',
      },
      path.join(mkdtempSync(path.join(os.tmpdir(), 'ams-status-')), 'evidence'),
    );
    // A worker boots tfjs and its processors: generous on a shared machine.
    await worker.ready(300_000);
  }, 360_000);

  afterAll(async () => {
    await worker?.kill();
    await service?.close();
  });

  const status = async () => (await service.http.get('/workers/status')).body;
  const mine = async () => {
    const body = await status();
    return { body, me: body.workers.find((w: any) => w.worker_id === WORKER_ID) };
  };
  const until = <T>(what: string, check: () => Promise<T | undefined>) =>
    waitFor(check, {
      timeoutMs: 60_000,
      intervalMs: 100,
      what,
      explain: () => `--- worker output (last 3000 chars) ---\n${worker?.output.slice(-3000)}`,
    });
  const submit = async () => {
    const res = await service.http.post('/tasks/submit', {
      project_id: 'status_p',
      task_type: 'test_sleep',
      task_data: { duration_ms: 60_000, steps: 60 },
    });
    expect(res.status).toBe(201);
    return res.body.task_id as string;
  };

  it('reports idle, active with a free slot, busy with both slots taken', async () => {
    const idle = await until('the worker idle', async () => {
      const { body, me } = await mine();
      return me?.status === 'idle' ? { body, me } : undefined;
    });
    expect(idle.me).toMatchObject({
      worker_type: ['cpu_intensive'],
      current_task_id: null,
      backend: 'wasm',
      device: 'cpu',
      gpus: [],
    });
    expect(idle.body).toMatchObject({ total_workers: 1, active_workers: 0, offline_workers: 0 });

    const first = await submit();
    const active = await until('the worker active', async () => {
      const { body, me } = await mine();
      return me?.status === 'active' ? { body, me } : undefined;
    });
    expect(active.me.current_task_id).toBe(first);
    expect(active.body.active_workers).toBe(1);

    const second = await submit();
    const busy = await until('the worker busy', async () => {
      const { me } = await mine();
      return me?.status === 'busy' ? me : undefined;
    });
    expect(busy.current_task_id).toEqual(expect.stringMatching(new RegExp(`${first}|${second}`)));
  });

  it('reports offline a worker killed without a word, until its record expires', async () => {
    await worker!.kill();
    const offline = await until('the worker offline', async () => {
      const { body, me } = await mine();
      return me?.status === 'offline' ? { body, me } : undefined;
    });
    // Silent for more than three of its 1 s intervals, and no longer said to run anything.
    expect(Date.now() - Date.parse(offline.me.last_heartbeat)).toBeGreaterThan(3000);
    expect(offline.me).toMatchObject({ current_task_id: null, worker_type: ['cpu_intensive'] });
    expect(offline.body).toMatchObject({ total_workers: 1, active_workers: 0, offline_workers: 1 });
  });

  it('shows a CUDA worker’s heartbeat in the API’s gpu health, and "none" once it is offline', async () => {
    // No GPU here: the beat a tfjs-node-gpu worker writes, through the workers' own repository.
    const redis = createRedisClient(service.config, 'spec', { commandTimeoutMs: 10_000 });
    const GiB = 2 ** 30;
    const gpus = [
      {
        gpu_id: '0',
        name: 'NVIDIA L4',
        memory_used_bytes: 3 * GiB,
        memory_total_bytes: 24 * GiB,
        utilization_percent: 60,
      },
    ];
    const beat = (ageMs: number) =>
      new WorkerStatusRepository(redis, service.config).beat({
        worker_id: 'cuda-worker',
        worker_type: ['gpu_heavy'],
        status: 'busy',
        current_task_id: null,
        current_task_ids: [],
        gpu_utilization: 0.6,
        memory_usage: GiB,
        tasks_completed: 1,
        last_heartbeat: new Date(Date.now() - ageMs).toISOString(),
        backend: 'tensorflow',
        device: 'gpu',
        gpus,
        heartbeat_interval: 10,
        started_at: new Date().toISOString(),
        models: [],
      });
    try {
      await beat(0);
      const health = await service.http.get('/health', { key: null });
      expect(health.body.details.gpu).toMatchObject({
        status: 'up',
        gpu: 'available',
        gpu_workers: 1,
        gpus: 1,
        memory_used_bytes: 3 * GiB,
        memory_total_bytes: 24 * GiB,
        workers: [{ worker_id: 'cuda-worker', gpus }],
      });
      expect(health.body.details.workers).toMatchObject({ gpu: true, backends: ['tensorflow'] });
      const listed = (await status()).workers.find((w: any) => w.worker_id === 'cuda-worker');
      expect(listed).toMatchObject({ device: 'gpu', gpus, status: 'busy' });

      await beat(31_000);
      const later = await service.http.get('/health', { key: null });
      expect(later.body.details.gpu).toMatchObject({ status: 'up', gpu: 'none', gpu_workers: 0 });
      expect(later.body.details.workers).toMatchObject({ gpu: false });
      expect(later.body.details.workers.offline).toBeGreaterThanOrEqual(1);
    } finally {
      redis.disconnect();
    }
  });
});
