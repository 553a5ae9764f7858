import { Global, Inject, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { Redis } from 'ioredis';
import { SigningKeys } from './signing-keys';

/** Connection options shared by every client we open (commands and BullMQ alike). */
export function redisOptions() {
  return {
    // BullMQ workers need this; for plain commands it makes calls wait for a reconnect instead
    // of failing after 20 tries: the shared command connection bounds them with a commandTimeout
    // (REDIS_COMMAND_TIMEOUT_MS), readiness probes with their own timeouts.
    maxRetriesPerRequest: null,
    enableReadyCheck: true,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  } as const;
}

/**
 * A connection of its own. `commandTimeoutMs` bounds each command (queued while reconnecting
 * included); only for connections that send short commands, never blocking reads or subscribers.
 */
export function createRedis(
  config: AppConfig,
  name: string,
  { commandTimeoutMs }: { commandTimeoutMs?: number } = {},
): Redis {
  const client = new Redis(config.redis.url, {
    ...redisOptions(),
    connectionName: `movie-task-service-${name}`,
    ...(commandTimeoutMs ? { commandTimeout: commandTimeoutMs } : {}),
  });
  if (commandTimeoutMs) dropTimedOutOfflineCommands(client);
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

/**
 * ioredis keeps a command issued while disconnected in its offline queue and sends it on
 * reconnect even when its commandTimeout has already rejected it: a submit answered 503 would
 * still create its record minutes later. A command already settled is not sent. Pipelines and
 * transactions (sent with a stream) are left alone: skipping one of their commands would break
 * their framing.
 */
function dropTimedOutOfflineCommands(client: Redis): void {
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...[command, stream]: Parameters<Redis['sendCommand']>): unknown =>
    command.isSettled && stream === undefined ? command.promise : send(command, stream);
}

/**
 * The shared command connection, injected by its class. Its commands are bounded by
 * REDIS_COMMAND_TIMEOUT_MS: an API request fails fast (503) while Redis is unreachable. Also the
 * signing keys (SigningKeys), resolved once at boot: derived ones need the salt in Redis.
 */
@Global()
@Module({
  providers: [
    {
      provide: Redis,
      inject: [AppConfig],
      useFactory: (c: AppConfig) =>
        createRedis(c, 'commands', { commandTimeoutMs: c.redis.commandTimeoutMs }),
    },
    {
      provide: SigningKeys,
      inject: [AppConfig, Redis],
      useFactory: (c: AppConfig, redis: Redis) => SigningKeys.resolve(c, redis),
    },
  ],
  exports: [Redis, SigningKeys],
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
