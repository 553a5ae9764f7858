export * from './drivers/local.driver';
export * from './drivers/s3.driver';
export * from './storage.driver';
export * from './storage.module';
