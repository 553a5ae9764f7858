import { Module } from '@nestjs/common';
import { ThrottlerModule } from '@nestjs/throttler';
import { AppConfig } from '@app/config';
import { REDIS_CLIENT, type RedisClient } from '@app/redis';
import { RedisThrottlerStorage } from './redis-throttler.storage';

/**
 * @nestjs/throttler with one limiter: RATE_LIMIT_SUBMIT per RATE_LIMIT_WINDOW_SECONDS (0: off).
 * No guard is global: routes opt in with @UseGuards(SubmitThrottlerGuard). The limiter is named
 * `default` so that its headers are the plain Retry-After and X-RateLimit-*.
 */
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [AppConfig, REDIS_CLIENT],
      useFactory: (config: AppConfig, redis: RedisClient) => ({
        throttlers: [
          {
            name: 'default',
            limit: config.api.rateLimit.submit,
            ttl: config.api.rateLimit.windowSeconds * 1000,
          },
        ],
        storage: new RedisThrottlerStorage(redis, config.redis.prefix),
        skipIf: () => config.api.rateLimit.submit === 0,
      }),
    }),
  ],
  exports: [ThrottlerModule],
})
export class RateLimitModule {}
