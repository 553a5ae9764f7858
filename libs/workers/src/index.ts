export * from './worker-status.repository';
export * from './workers.module';
export * from './model-catalog.repository';
