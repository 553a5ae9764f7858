import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { createRedis, redisKey } from '@app/redis';
import { Redis } from 'ioredis';

/**
 * Cancel requests travel to whichever worker holds the task over Redis pub/sub. The task's own
 * status (cancelled) is the persistent mark for a run that starts after the broadcast or misses it.
 */
@Injectable()
export class CancelBus implements OnApplicationShutdown {
  private readonly logger = new Logger(CancelBus.name);
  private subscriber?: Redis;

  constructor(
    @Inject(Redis) private readonly redis: Redis,
    private readonly config: AppConfig,
  ) {}

  private get channel(): string {
    return redisKey(this.config.redis.prefix, 'events', 'cancel');
  }

  async publish(taskId: string): Promise<void> {
    await this.redis.publish(this.channel, taskId);
  }

  async subscribe(onCancel: (taskId: string) => void): Promise<void> {
    this.subscriber ??= createRedis(this.config, 'cancel-subscriber');
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
