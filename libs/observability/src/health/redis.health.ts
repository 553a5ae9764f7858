import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import { withTimeout } from './with-timeout';

/** PING with a bound (both apps): a probe must never hang on a dead connection. */
@Injectable()
export class RedisHealthIndicator {
  constructor(
    @Inject(Redis) private readonly redis: Redis,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key = 'redis', timeoutMs = 1000) {
    const indicator = this.indicators.check(key);
    const started = Date.now();
    try {
      // A client that is reconnecting queues commands (maxRetriesPerRequest: null): answer now.
      if (this.redis.status !== 'ready') throw new Error(`connection ${this.redis.status}`);
      await withTimeout(this.redis.ping(), timeoutMs);
      return indicator.up({ latency_ms: Date.now() - started });
    } catch (err) {
      return indicator.down({ message: (err as Error).message });
    }
  }
}
