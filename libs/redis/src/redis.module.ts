import { Global, Inject, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { Redis } from 'ioredis';

/** Connection options shared by every client we open (commands and BullMQ alike). */
export function redisOptions() {
  return {
    // BullMQ workers need this; for plain commands it makes calls wait for a reconnect instead
    // of failing after 20 tries, which readiness probes bound with their own timeouts.
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  } as const;
}

export function createRedis(config: AppConfig, name: string): Redis {
  const client = new Redis(config.redis.url, { ...redisOptions(), connectionName: `ams-${name}` });
  const logger = new Logger(`Redis:${name}`);
  let down = false;
  client.on('error', (err: Error) => {
    if (!down) logger.warn(`connection error: ${err.message}`);
    down = true;
  });
  client.on('ready', () => {
    if (down) logger.log('reconnected');
    down = false;
  });
  return client;
}

/** The shared command connection, injected by its class. */
@Global()
@Module({
  providers: [
    {
      provide: Redis,
      inject: [AppConfig],
      useFactory: (c: AppConfig) => createRedis(c, 'commands'),
    },
  ],
  exports: [Redis],
})
export class RedisModule implements OnApplicationShutdown {
  constructor(@Inject(Redis) private readonly redis: Redis) {}

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** BullMQ connection options from REDIS_URL; BullMQ opens and closes these connections itself. */
export function bullConnection(config: AppConfig) {
  const url = new URL(config.redis.url);
  const db = Number(url.pathname.replace(/^\//, '') || 0);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || 6379),
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    db: Number.isFinite(db) ? db : 0,
    tls: url.protocol === 'rediss:' ? {} : undefined,
    ...redisOptions(),
  };
}
