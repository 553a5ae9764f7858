import { Global, Logger, Module } from '@nestjs/common';
import { AppConfig, describeRedis } from '@app/config';
import { REDIS_CLIENT, RedisClientFactory, type RedisClient } from './redis-client.factory';
import { SigningKeys } from './signing-keys';

/**
 * The connection factory (`RedisClientFactory`) and the shared command connection (`REDIS_CLIENT`,
 * a `RedisClient`: `@InjectRedis()`). Its commands are bounded by REDIS_COMMAND_TIMEOUT_MS: an API
 * request fails fast (503) while Redis is unreachable. Also the signing keys (SigningKeys),
 * resolved once at boot: derived ones need the salt in Redis. The factory closes every connection
 * it opened at shutdown; this module is global, so that comes after the modules that use them.
 */
@Global()
@Module({
  providers: [
    RedisClientFactory,
    {
      provide: REDIS_CLIENT,
      inject: [AppConfig, RedisClientFactory],
      useFactory: (c: AppConfig, factory: RedisClientFactory): RedisClient => {
        new Logger('Redis').log(`connecting to ${describeRedis(c.redis)}`);
        return factory.create('commands', { commandTimeoutMs: c.redis.commandTimeoutMs });
      },
    },
    {
      provide: SigningKeys,
      inject: [AppConfig, REDIS_CLIENT],
      useFactory: (c: AppConfig, redis: RedisClient) => SigningKeys.resolve(c, redis),
    },
  ],
  exports: [RedisClientFactory, REDIS_CLIENT, SigningKeys],
})
export class RedisModule {}
