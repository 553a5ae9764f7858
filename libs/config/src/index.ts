export * from './app-config';
export * from './config.module';
export * from './env.schema';
export * from './log-levels';
export * from './redis-settings';
