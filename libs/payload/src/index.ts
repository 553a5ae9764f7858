export * from './payload.client';
export * from './payload.errors';
export * from './payload.module';
