import type { LoggerService } from '@nestjs/common';
import type { AppConfig } from '@app/config';
import { Logger, PinoLogger } from 'nestjs-pino';
import { loggerParams } from './logger-params';

/**
 * The app's Nest logger backed by pino, made before Nest starts so that boot lines (tfjs start,
 * model warm-up, a failed boot) are structured too. nestjs-pino keeps one root logger per
 * process; LoggingModule later attaches to the same one.
 */
export function createAppLogger(config: AppConfig, app: string): LoggerService {
  const params = loggerParams(config, app);
  return new Logger(new PinoLogger(params), params);
}
