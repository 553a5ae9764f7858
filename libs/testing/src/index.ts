export * from './file-server';
export * from './http-client';
export * from './test-config';
