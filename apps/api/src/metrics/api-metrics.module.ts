import { Global, Module, type DynamicModule } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import { TasksModule } from '@app/tasks';
import { ApiMetrics } from './api-metrics.service';
import { MetricsController } from './metrics.controller';

export const METRICS_PATH = '/metrics';

/**
 * Mounts MetricsController through @willsoto/nestjs-prometheus. Its default metrics and metric
 * providers are off: they use prom-client's global registry, which an API and a worker sharing a
 * process would fight over. Global so that the controller, which lives in PrometheusModule, can
 * inject ApiMetrics.
 */
@Global()
@Module({})
export class ApiMetricsModule {
  static register(): DynamicModule {
    return {
      module: ApiMetricsModule,
      imports: [
        TasksModule,
        PrometheusModule.register({
          controller: MetricsController,
          path: METRICS_PATH,
          defaultMetrics: { enabled: false },
        }),
      ],
      providers: [ApiMetrics],
      exports: [ApiMetrics],
    };
  }
}
