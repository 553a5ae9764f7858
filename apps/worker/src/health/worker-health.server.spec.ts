import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TerminusModule } from '@nestjs/terminus';
import { AppConfig } from '@app/config';
import { GpuDeviceMonitor, GpuHealthIndicator, GpuService } from '@app/gpu';
import { RedisHealthIndicator } from '@app/observability';
import { freePort } from '@app/testing';
import { WorkerMetrics } from '../metrics/worker-metrics.service';
import { ModelPreloader } from '../models/model-preloader';
import { WorkerHealthServer, workerHealthServerProvider } from './worker-health.server';
import { WorkerReadiness } from './worker-readiness';

async function get(url: string) {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, text, json: text.startsWith('{') ? JSON.parse(text) : null };
}

/**
 * The server with real Terminus, readiness and GPU indicator; Redis and metrics are stand-ins so
 * that the lifecycle itself is what is tested.
 */
async function build(env: Record<string, string>) {
  const redisUp = { value: true };
  const modelsLoading = { value: false };
  const config = AppConfig.fromEnv({ API_KEYS: 'k', TFJS_BACKEND: 'wasm', ...env });
  const module = await Test.createTestingModule({
    imports: [TerminusModule.forRoot({ logger: false })],
    providers: [
      { provide: AppConfig, useValue: config },
      GpuService,
      { provide: GpuDeviceMonitor, useFactory: () => new GpuDeviceMonitor(async () => '') },
      GpuHealthIndicator,
      WorkerReadiness,
      {
        provide: RedisHealthIndicator,
        useValue: {
          check: async () =>
            redisUp.value
              ? { redis: { status: 'up' } }
              : { redis: { status: 'down', message: 'connection reconnecting' } },
        },
      },
      {
        provide: WorkerMetrics,
        useValue: {
          registry: { contentType: 'text/plain; version=0.0.4; charset=utf-8' },
          scrape: async () => 'tasks_total 0\n',
        },
      },
      {
        provide: ModelPreloader,
        useValue: {
          check: () =>
            modelsLoading.value
              ? { models: { status: 'down', ready: [], loading: ['esrgan-slim-x4'] } }
              : { models: { status: 'up', ready: ['esrgan-slim-x4'] } },
        },
      },
      workerHealthServerProvider,
    ],
  }).compile();
  return { module, redisUp, modelsLoading, server: module.get(WorkerHealthServer) };
}

describe('WorkerHealthServer', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));

  it('is live but not ready while the worker boots, ready once it has, not ready when stopping', async () => {
    const port = await freePort();
    const { module, redisUp, modelsLoading, server } = await build({
      WORKER_HEALTH_PORT: String(port),
    });
    const base = `http://127.0.0.1:${port}`;
    try {
      // Compiled, not initialised: tfjs has not started, processors have not warmed up.
      expect(server.port).toBe(port);
      expect((await get(`${base}/health/live`)).status).toBe(200);
      const starting = await get(`${base}/health/ready`);
      expect(starting.status).toBe(503);
      expect(starting.json.error).toMatchObject({
        worker: { status: 'down', phase: 'starting' },
        gpu: { status: 'down' },
      });

      await module.init();
      const ready = await get(`${base}/health/ready`);
      expect(ready.status).toBe(200);
      expect(ready.json.details).toMatchObject({
        worker: { status: 'up', phase: 'running' },
        redis: { status: 'up' },
        gpu: { status: 'up', backend: 'wasm', gpu: 'no GPU, backend wasm' },
      });
      expect((await get(`${base}/health`)).status).toBe(200);

      redisUp.value = false;
      expect((await get(`${base}/health/ready`)).status).toBe(503);
      expect((await get(`${base}/health/live`)).status).toBe(200);
      redisUp.value = true;

      // A model still loading keeps it not ready, and readiness names it.
      modelsLoading.value = true;
      const loading = await get(`${base}/health/ready`);
      expect(loading.status).toBe(503);
      expect(loading.json.error.models).toEqual({
        status: 'down',
        ready: [],
        loading: ['esrgan-slim-x4'],
      });
      modelsLoading.value = false;

      const metrics = await get(`${base}/metrics`);
      expect(metrics).toMatchObject({ status: 200, text: 'tasks_total 0\n' });
      expect((await get(`${base}/other`)).status).toBe(404);
      expect((await fetch(`${base}/health/live`, { method: 'POST' })).status).toBe(405);

      module.get(WorkerReadiness).beforeApplicationShutdown();
      const stopping = await get(`${base}/health/ready`);
      expect(stopping.status).toBe(503);
      expect(stopping.json.error.worker.phase).toBe('stopping');
    } finally {
      await module.close();
    }
    await expect(fetch(`${base}/health/live`)).rejects.toThrow();
  });

  it('serves no /metrics when ENABLE_METRICS=false, and nothing at all on port 0', async () => {
    const port = await freePort();
    const quiet = await build({ WORKER_HEALTH_PORT: String(port), ENABLE_METRICS: 'false' });
    try {
      expect((await get(`http://127.0.0.1:${port}/metrics`)).status).toBe(404);
    } finally {
      await quiet.module.close();
    }
    const off = await build({ WORKER_HEALTH_PORT: '0' });
    expect(off.server.port).toBeUndefined();
    await off.module.close();
  });
});
