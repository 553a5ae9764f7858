export * from './health/redis.health';
export * from './health/with-timeout';
export * from './logging/app-logger';
export * from './logging/logger-params';
export * from './logging/logging.module';
export * from './logging/pretty.stream';
export * from './logging/request-log';
export * from './metrics/app-registry';
