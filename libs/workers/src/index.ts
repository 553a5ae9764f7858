export * from './worker-status.repository';
export * from './workers.module';
