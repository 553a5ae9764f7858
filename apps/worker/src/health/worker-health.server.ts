import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpException, Logger, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { HealthCheckService, type HealthCheckResult } from '@nestjs/terminus';
import { AppConfig } from '@app/config';
import { GpuHealthIndicator } from '@app/gpu';
import { RedisHealthIndicator } from '@app/observability';
import { WorkerMetrics } from '../metrics/worker-metrics.service';
import { ModelPreloader } from '../models/model-preloader';
import { WORKER_HEALTH_PATHS } from './worker-health.paths';
import { WorkerReadiness } from './worker-readiness';

/**
 * The worker's small HTTP server: liveness (the event loop answers), readiness (booted, Redis
 * answers within a bound, tfjs backend up, declared models warm) and metrics. Plain node:http: three GET routes do not
 * need a framework, and the worker stays an application context.
 */
export class WorkerHealthServer implements OnApplicationShutdown {
  private readonly logger = new Logger(WorkerHealthServer.name);
  private server?: Server;

  constructor(
    private readonly health: HealthCheckService,
    private readonly readiness: WorkerReadiness,
    private readonly redis: RedisHealthIndicator,
    private readonly gpu: GpuHealthIndicator,
    private readonly metrics: WorkerMetrics,
    private readonly config: AppConfig,
    private readonly preloader: ModelPreloader,
  ) {}

  /** The port it listens on, or undefined when WORKER_HEALTH_PORT=0 (off). */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  async listen(): Promise<void> {
    const port = this.config.ops.workerHealthPort;
    if (port === 0) return;
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.logger.error(`health server: ${err.message}`));
    this.server = server;
    this.logger.log(`health and metrics on port ${port}`);
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return send(res, 405, { statusCode: 405, message: 'Method Not Allowed' });
      }
      switch (path) {
        case WORKER_HEALTH_PATHS.live:
          return send(res, 200, await this.health.check([]));
        case WORKER_HEALTH_PATHS.ready:
        case WORKER_HEALTH_PATHS.health:
          return send(res, 200, await this.ready());
        case WORKER_HEALTH_PATHS.metrics:
          if (!this.config.ops.metrics) break;
          res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
          return void res.end(await this.metrics.scrape());
      }
      send(res, 404, { statusCode: 404, message: `Cannot ${req.method} ${path}` });
    } catch (err) {
      if (err instanceof HttpException) return send(res, err.getStatus(), err.getResponse());
      this.logger.error(`${path}: ${(err as Error).message}`);
      send(res, 500, { statusCode: 500, message: 'Internal Server Error' });
    }
  }

  /** Terminus throws a 503 HttpException carrying the result when a check is down. */
  private ready(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.readiness.check(),
      () => this.redis.check(),
      () => this.gpu.check(),
      () => this.preloader.check(),
    ]);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

/**
 * Listens while Nest builds the providers, before any init hook runs (tfjs start, model loading):
 * liveness must answer during a long warm-up, readiness says "starting" until it is over.
 */
export const workerHealthServerProvider: Provider = {
  provide: WorkerHealthServer,
  inject: [
    HealthCheckService,
    WorkerReadiness,
    RedisHealthIndicator,
    GpuHealthIndicator,
    WorkerMetrics,
    AppConfig,
    ModelPreloader,
  ],
  useFactory: async (...deps: ConstructorParameters<typeof WorkerHealthServer>) => {
    const server = new WorkerHealthServer(...deps);
    await server.listen();
    return server;
  },
};

/** Everything the worker needs for health, metrics and heartbeats (WorkerModule providers). */
export const WORKER_OPERATIONS_PROVIDERS: Provider[] = [
  WorkerMetrics,
  ModelPreloader,
  WorkerReadiness,
  RedisHealthIndicator,
  GpuHealthIndicator,
  workerHealthServerProvider,
];
