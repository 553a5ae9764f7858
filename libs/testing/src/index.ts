export * from './file-server';
export * from './http-client';
export * from './log-capture';
export * from './payload-server';
export * from './s3-server';
export * from './test-config';
export * from './url-policies';
export * from './redis-server';
