import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';
import type { ThrottlerStorageRecord } from '@nestjs/throttler/dist/throttler-storage-record.interface';
import { groupKey, type RedisClient } from '@app/redis';
import type { Redis } from 'ioredis';

/**
 * @nest-lab's Redis storage (its atomic Lua counter, shared by every API replica) on our command
 * connection, with its keys under `<REDIS_PREFIX>:{ratelimit:…}` like every key the service owns. The
 * library names keys `{key:name}:hits`, outside any prefix, so `increment` builds them here and
 * runs the library's script.
 */
type RateLimitRedis = RedisClient & {
  rateLimitHit(hits: string, blocked: string, ...args: Array<string | number>): Promise<unknown>;
};

export class RedisThrottlerStorage extends ThrottlerStorageRedisService {
  constructor(
    redis: RedisClient,
    private readonly prefix: string,
  ) {
    // The library keeps either kind (`redis: Redis | Cluster`); its overloads take one at a time.
    super(redis as Redis);
    // EVALSHA of the library's script (EVAL would send and hash its whole text on every submit).
    if (!('rateLimitHit' in redis)) {
      redis.defineCommand('rateLimitHit', { numberOfKeys: 2, lua: this.scriptSrc });
    }
  }

  override async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    // The two keys of one counter share a hash tag: the script runs in one cluster slot.
    const base = groupKey(this.prefix, `ratelimit:${throttlerName}:${key}`);
    const results: unknown = await (this.redis as RateLimitRedis).rateLimitHit(
      `${base}:hits`,
      `${base}:blocked`,
      throttlerName,
      ttl,
      limit,
      blockDuration,
    );
    if (
      !Array.isArray(results) ||
      results.length !== 4 ||
      results.some((n) => typeof n !== 'number')
    )
      throw new TypeError(`Unexpected rate-limit script result: ${JSON.stringify(results)}`);
    const [totalHits, timeToExpire, isBlocked, timeToBlockExpire] = results as number[];
    return {
      totalHits,
      timeToExpire: Math.ceil(timeToExpire / 1000),
      isBlocked: isBlocked === 1,
      timeToBlockExpire: Math.ceil(timeToBlockExpire / 1000),
    };
  }
}
