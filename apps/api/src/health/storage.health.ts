import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { StorageDriver } from '@app/storage';
import { withTimeout } from '@app/observability';

@Injectable()
export class StorageHealthIndicator {
  constructor(
    private readonly storage: StorageDriver,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key = 'storage', timeoutMs = 2000) {
    const indicator = this.indicators.check(key);
    try {
      await withTimeout(this.storage.check(), timeoutMs);
      return indicator.up({ driver: this.storage.name });
    } catch (err) {
      return indicator.down({ driver: this.storage.name, message: (err as Error).message });
    }
  }
}
