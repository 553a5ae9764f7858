import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { AppConfig, ConfigModule } from '@app/config';
import { LoggingModule, RedisHealthIndicator } from '@app/observability';
import { ProjectsModule } from '@app/projects';
import { RedisModule } from '@app/redis';
import { StorageModule } from '@app/storage';
import { TasksModule } from '@app/tasks';
import { WorkersModule } from '@app/workers';
import { QueuesBoardModule } from './admin/queues-board.module';
import { ApiKeyGuard } from './auth/api-key.guard';
import { DomainExceptionFilter } from './common/domain-exception.filter';
import { HttpDrain } from './common/http-drain';
import { RedisUnavailableFilter } from './common/redis-unavailable.filter';
import { HealthController } from './health/health.controller';
import { StorageHealthIndicator } from './health/storage.health';
import { GpuWorkersHealthIndicator } from './health/gpu-workers.health';
import { WorkersHealthIndicator } from './health/workers.health';
import { MediaController } from './media/media.controller';
import { ApiMetricsModule } from './metrics/api-metrics.module';
import { ProjectsController } from './projects/projects.controller';
import { RateLimitModule } from './rate-limit/rate-limit.module';
import { IdempotencyService } from './tasks/idempotency.service';
import { TasksController } from './tasks/tasks.controller';
import { TaskViews } from './tasks/task-views';
import { ModelsController } from './models/models.controller';
import { WorkersController } from './workers/workers.controller';

/**
 * The REST API. It never loads tfjs, sharp, ffmpeg or worker code (inputs are fetched and probed
 * by the worker): the import-boundary lint in eslint.config.mjs and media-free.e2e-spec keep it so.
 */
@Module({})
export class ApiModule {
  static register(config: AppConfig): DynamicModule {
    return {
      module: ApiModule,
      imports: [
        ConfigModule.forRoot(config),
        RedisModule,
        TasksModule,
        WorkersModule,
        ProjectsModule,
        StorageModule,
        RateLimitModule,
        TerminusModule.forRoot({ gracefulShutdownTimeoutMs: 0 }),
        LoggingModule.forRoot(config, 'api'),
        ...(config.ops.metrics ? [ApiMetricsModule.register()] : []),
        ...(config.ops.bullBoard.enabled ? [QueuesBoardModule.register(config)] : []),
      ],
      controllers: [
        TasksController,
        ProjectsController,
        WorkersController,
        ModelsController,
        HealthController,
        MediaController,
      ],
      providers: [
        TaskViews,
        HttpDrain,
        IdempotencyService,
        RedisHealthIndicator,
        StorageHealthIndicator,
        WorkersHealthIndicator,
        GpuWorkersHealthIndicator,
        { provide: APP_GUARD, useClass: ApiKeyGuard },
        // Global filters are tried last-registered first: domain errors, then the catch-all
        // (Redis unavailable: 503; 4xx in our shape; the rest Nest's 500).
        { provide: APP_FILTER, useClass: RedisUnavailableFilter },
        { provide: APP_FILTER, useClass: DomainExceptionFilter },
      ],
    };
  }
}
