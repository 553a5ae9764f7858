import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { AppConfig } from '@app/config';
import { REDIS_CLIENT, redisKey, type RedisClient } from '@app/redis';
import { withTimeout } from './with-timeout';

/**
 * A bounded write (both apps): readiness means Redis takes writes, not only that it answers. A
 * Redis at maxmemory with noeviction answers PING but refuses every submit (OOM), and a replica
 * after a failover refuses writes (READONLY): both report down with Redis's reason. A probe must
 * never hang on a dead connection.
 */
@Injectable()
export class RedisHealthIndicator {
  private readonly key: string;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly indicators: HealthIndicatorService,
    config: AppConfig,
  ) {
    this.key = redisKey(config.redis.prefix, 'health', 'write');
  }

  async check(key = 'redis', timeoutMs = 1000) {
    const indicator = this.indicators.check(key);
    const started = Date.now();
    try {
      // A client that is reconnecting queues commands (maxRetriesPerRequest: null): answer now.
      if (this.redis.status !== 'ready') throw new Error(`connection ${this.redis.status}`);
      // Expires by itself: replicas of both apps write the same small key, nothing accumulates.
      await withTimeout(this.redis.set(this.key, String(Date.now()), 'PX', 10_000), timeoutMs);
      return indicator.up({ latency_ms: Date.now() - started });
    } catch (err) {
      return indicator.down({ message: (err as Error).message });
    }
  }
}
