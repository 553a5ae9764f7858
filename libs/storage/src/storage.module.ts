import { Module } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { LocalStorageDriver } from './drivers/local.driver';
import { S3StorageDriver } from './drivers/s3.driver';
import { StorageDriver } from './storage.driver';

/** The configured StorageDriver (STORAGE_DRIVER). */
@Module({
  providers: [
    LocalStorageDriver,
    {
      provide: StorageDriver,
      inject: [AppConfig, LocalStorageDriver],
      useFactory: (config: AppConfig, local: LocalStorageDriver): StorageDriver => {
        switch (config.storage.driver) {
          case 'local':
            return local;
          case 'r2':
          case 's3':
            return new S3StorageDriver(config);
        }
      },
    },
  ],
  exports: [StorageDriver, LocalStorageDriver],
})
export class StorageModule {}
