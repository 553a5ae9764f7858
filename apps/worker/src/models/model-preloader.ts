import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { AppConfig } from '@app/config';
import { GpuService, ModelRepository } from '@app/gpu';
import { ModelCatalogRepository } from '@app/workers';
import { ProcessorRegistry } from '../runtime/processor.registry';

/**
 * Loads and warms up, once the worker has booted, the models its served task types declare
 * (MODEL_PRELOAD=declared), and publishes its model catalog for `GET /api/v1/models`. Loading
 * runs in the background so that liveness answers meanwhile; readiness is down until every model
 * is warm, and says which are still loading (or failed). A task arriving meanwhile waits for the
 * same load in `ModelRepository.use`.
 */
@Injectable()
export class ModelPreloader implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(ModelPreloader.name);
  private wanted: string[] = [];
  private done = false;
  private failure?: string;
  private preloading?: Promise<void>;

  constructor(
    private readonly models: ModelRepository,
    private readonly registry: ProcessorRegistry,
    private readonly catalog: ModelCatalogRepository,
    private readonly gpu: GpuService,
    private readonly config: AppConfig,
    private readonly indicators: HealthIndicatorService,
  ) {}

  onApplicationBootstrap(): void {
    const { declared, names } = this.config.gpu.modelPreload;
    this.wanted = [...new Set([...(declared ? this.registry.servedModels() : []), ...names])];
    void this.publish();
    this.preloading = this.preload();
  }

  /** Resolves once the boot preload has ended (loaded or failed). */
  settled(): Promise<void> {
    return this.preloading ?? Promise.resolve();
  }

  private async preload(): Promise<void> {
    if (this.wanted.length === 0) {
      this.done = true;
      return;
    }
    const started = Date.now();
    try {
      await this.models.preload(this.wanted);
      this.logger.log(
        `models ready in ${Date.now() - started} ms on ${this.gpu.backendName}: ${this.wanted.join(', ')}`,
      );
    } catch (err) {
      this.failure = (err as Error).message;
      this.logger.error(`${this.failure}; this worker stays not ready`);
    } finally {
      this.done = true;
    }
  }

  private async publish(): Promise<void> {
    try {
      await this.catalog.publish({
        worker_id: this.config.worker.id,
        backend: this.gpu.backendName,
        published_at: new Date().toISOString(),
        models: await this.models.catalog(),
      });
    } catch (err) {
      this.logger.warn(`could not publish the model catalog: ${(err as Error).message}`);
    }
  }

  /** Readiness: up once every declared model is warm; down with the ones loading or failed. */
  check(key = 'models') {
    const indicator = this.indicators.check(key);
    const states = this.models.states().filter((s) => this.wanted.includes(s.name));
    const ready = states.filter((s) => s.state === 'ready').map((s) => s.name);
    const loading = this.wanted.filter(
      (n) => !ready.includes(n) && !states.some((s) => s.name === n && s.state === 'failed'),
    );
    const failed = states
      .filter((s) => s.state === 'failed')
      .map((s) => ({ name: s.name, error: s.error }));
    const details = {
      ready,
      ...(loading.length > 0 ? { loading } : {}),
      ...(failed.length > 0 ? { failed } : {}),
    };
    return this.done && !this.failure && loading.length === 0
      ? indicator.up(details)
      : indicator.down(details);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.catalog.remove(this.config.worker.id).catch(() => undefined);
  }
}
