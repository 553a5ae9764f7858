import type { INestApplicationContext, Type } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { AppConfig } from '@app/config';
import { ALL_QUEUES, EXTRA_TASK_DEFINITIONS, type TaskDefinition } from '@app/tasks';
import { getQueueToken, WorkerHost } from '@nestjs/bullmq';
import { DiscoveryService } from '@nestjs/core';
import type { Queue } from 'bullmq';
import { RedisClientFactory } from '@app/redis';
import { cleanRedis, freePort, HttpClient, testConfig } from '@app/testing';
import { ApiModule } from '../../src/api.module';
import { createApiAdapter, setupApp } from '../../src/setup-app';
import { ModelPreloader } from '../../../worker/src/models/model-preloader';
import { WorkerModule } from '../../../worker/src/worker.module';

export interface ServiceOptions {
  env?: Record<string, string>;
  /** Start a worker too (default true). */
  worker?: boolean;
  extraDefinitions?: TaskDefinition<any>[];
  extraWorkerModules?: Type<unknown>[];
  /** Modules only a test needs in the API (e.g. a slow route for the shutdown drain). */
  extraApiModules?: Type<unknown>[];
  /** Give the worker its health/metrics port (a free one); off by default (port 0). */
  workerHealth?: boolean;
  /**
   * Wait in `start()` until the worker's boot preload of models (MODEL_PRELOAD) has ended, as a
   * deployment waits for readiness (default true); false to watch the preload from the test.
   */
  waitForModels?: boolean;
}

/**
 * The real API (Fastify on a loopback port) and, optionally, a real worker, in this process,
 * against the real Redis under a prefix of their own.
 */
export class TestService {
  api!: NestFastifyApplication;
  worker?: INestApplicationContext;
  http!: HttpClient;
  config!: AppConfig;

  constructor(private readonly opts: ServiceOptions = {}) {}

  async start(): Promise<this> {
    const port = await freePort();
    this.config = testConfig({
      API_PORT: String(port),
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
      ...(this.opts.workerHealth ? { WORKER_HEALTH_PORT: String(await freePort()) } : {}),
      ...this.opts.env,
    });
    const module = await Test.createTestingModule({
      imports: [ApiModule.register(this.config), ...(this.opts.extraApiModules ?? [])],
    })
      .overrideProvider(EXTRA_TASK_DEFINITIONS)
      .useValue(this.opts.extraDefinitions ?? [])
      .compile();
    this.api = module.createNestApplication<NestFastifyApplication>(createApiAdapter(this.config), {
      logger: process.env.TEST_LOG_LEVEL ? ['fatal', 'error', 'warn', 'log'] : ['fatal', 'error'],
    });
    setupApp(this.api, this.config);
    await this.api.listen(port, '127.0.0.1');
    this.http = new HttpClient(`http://127.0.0.1:${port}/api/v1`);
    if (this.opts.worker !== false) await this.startWorker();
    return this;
  }

  /** Base URL of the worker's health and metrics server (with `workerHealth`). */
  get workerHealthUrl(): string {
    return `http://127.0.0.1:${this.config.ops.workerHealthPort}`;
  }

  async startWorker(): Promise<INestApplicationContext> {
    const module = await Test.createTestingModule({
      imports: [WorkerModule.register(this.config), ...(this.opts.extraWorkerModules ?? [])],
    })
      .overrideProvider(EXTRA_TASK_DEFINITIONS)
      .useValue(this.opts.extraDefinitions ?? [])
      .compile();
    module.useLogger(
      process.env.TEST_LOG_LEVEL ? ['fatal', 'error', 'warn', 'log'] : ['fatal', 'error'],
    );
    try {
      this.worker = await module.init();
      if (this.opts.waitForModels !== false) await this.worker.get(ModelPreloader).settled();
    } catch (err) {
      // A worker that refused to boot still opened connections; Nest skips shutdown hooks then.
      await module.close().catch(() => undefined);
      await module.get(RedisClientFactory, { strict: false }).close();
      for (const name of ALL_QUEUES)
        await module.get<Queue>(getQueueToken(name), { strict: false }).close();
      for (const { instance } of module.get(DiscoveryService).getProviders()) {
        if (instance instanceof WorkerHost) await instance.worker?.close();
      }
      throw err;
    }
    return this.worker;
  }

  async stopWorker(): Promise<void> {
    await this.worker?.close();
    this.worker = undefined;
  }

  async close(): Promise<void> {
    await this.stopWorker();
    await this.api?.close();
    await cleanRedis(this.config);
  }
}
