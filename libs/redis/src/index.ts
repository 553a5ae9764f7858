export * from './redis-keys';
export * from './redis-client.factory';
export * from './redis.module';
export * from './redis-errors';
export * from './signing-keys';
export * from './redis-partitions';
