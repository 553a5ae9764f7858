import { Module, type DynamicModule } from '@nestjs/common';
import type { AppConfig } from '@app/config';
import { LoggerModule } from 'nestjs-pino';
import { loggerParams } from './logger-params';

/**
 * Structured logs for an app: Nest's `Logger` calls go through pino once main.ts installs
 * `app.useLogger(app.get(Logger))`. The API's request lines come from `registerRequestLog`.
 */
@Module({})
export class LoggingModule {
  static forRoot(config: AppConfig, app: string): DynamicModule {
    return {
      module: LoggingModule,
      imports: [LoggerModule.forRoot(loggerParams(config, app))],
      exports: [LoggerModule],
    };
  }
}
