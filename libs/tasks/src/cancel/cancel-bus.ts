import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { REDIS_CLIENT, RedisClientFactory, redisKey, type RedisClient } from '@app/redis';

/**
 * Cancel requests travel to whichever worker holds the task over Redis pub/sub. The task's own
 * status (cancelled) is the persistent mark for a run that starts after the broadcast or misses it.
 */
@Injectable()
export class CancelBus implements OnApplicationShutdown {
  private readonly logger = new Logger(CancelBus.name);
  private subscriber?: RedisClient;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly connections: RedisClientFactory,
    private readonly config: AppConfig,
  ) {}

  private get channel(): string {
    return redisKey(this.config.redis.prefix, 'events', 'cancel');
  }

  async publish(taskId: string): Promise<void> {
    await this.redis.publish(this.channel, taskId);
  }

  async subscribe(onCancel: (taskId: string) => void): Promise<void> {
    // Subscribed connections wait for messages: no command timeout. On a cluster, PUBLISH reaches
    // every node, so the subscriber may listen on any.
    this.subscriber ??= this.connections.create('cancel-subscriber');
    this.subscriber.on('message', (channel: string, taskId: string) => {
      if (channel === this.channel) onCancel(taskId);
    });
    await this.subscriber.subscribe(this.channel);
    this.logger.debug(`listening for cancels on ${this.channel}`);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.subscriber?.quit().catch(() => this.subscriber?.disconnect());
  }
}
