import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { REDIS_CLIENT, RedisClientFactory, type RedisClient } from '@app/redis';
import { BULL_PREFIX_PART, TaskRepository } from '@app/tasks';
import { Queue, type JobsOptions } from 'bullmq';
import { WEBHOOK_BACKOFF_TYPE } from './webhook.backoff';
import {
  jobDataFromOutbox,
  WEBHOOK_JOB_NAME,
  WEBHOOKS_QUEUE,
  type WebhookJobData,
} from './webhook-event';

type StreamEntry = [id: string, fields: string[]];
type StreamReply = Array<[key: string, entries: StreamEntry[]]> | null;

const DAY_S = 24 * 3600;

/**
 * Moves webhook events from the outbox stream (written by the terminal transition) into the
 * `webhooks` delivery queue. Entries are read through a consumer group and removed only after
 * their job exists, under the event's id as job id (so a second relay of the same entry adds
 * nothing). Entries a dead relay read but never removed are claimed by the next after
 * `claimIdleMs`; a restarted worker (same WORKER_ID) takes its own back at once.
 */
@Injectable()
export class WebhookOutboxRelay implements OnApplicationBootstrap, OnModuleDestroy {
  static readonly GROUP = 'relay';
  private readonly logger = new Logger(WebhookOutboxRelay.name);
  private readonly key: string;
  private readonly consumer: string;
  /** How long an entry stays with a relay that read it before another may take it. */
  claimIdleMs = 30_000;
  private client?: RedisClient;
  private queue?: Queue<WebhookJobData>;
  private loop?: Promise<void>;
  private stopping = false;
  private wake?: () => void;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly connections: RedisClientFactory,
    tasks: TaskRepository,
    private readonly config: AppConfig,
  ) {
    this.key = tasks.webhookOutboxKey();
    this.consumer = config.worker.id;
  }

  /**
   * Connections open only once the worker has booted (and close on destroy): a worker that fails
   * to boot leaves nothing open.
   */
  onApplicationBootstrap(): void {
    this.queue = new Queue<WebhookJobData>(WEBHOOKS_QUEUE, {
      connection: this.connections.bullConnection(),
      prefix: `${this.config.redis.prefix}:${BULL_PREFIX_PART}`,
    });
    this.queue.on('error', (err) => this.logger.warn(`webhooks queue: ${err.message}`));
    // Blocking reads need a connection of their own, without a command timeout.
    this.client = this.connections.create('webhook-relay');
    this.loop = this.run();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    // Ends a blocked XREADGROUP at once; nothing is lost (unacknowledged entries stay).
    this.client?.disconnect();
    await this.loop;
    await this.queue?.close();
  }

  private async run(): Promise<void> {
    let lastClaim = 0;
    let ownPending = true;
    while (!this.stopping) {
      try {
        const client = this.client!;
        if (ownPending) {
          await this.ensureGroup(client);
          // Entries this consumer read before a restart, then new ones.
          ownPending = (await this.relay(await this.read(client, '0', false))) > 0;
          continue;
        }
        if (Date.now() - lastClaim >= Math.min(this.claimIdleMs, 10_000)) {
          lastClaim = Date.now();
          await this.claim(client);
        }
        await this.relay(await this.read(client, '>', true));
      } catch (err) {
        if (this.stopping) break;
        // The stream and its group were deleted (FLUSHDB, a restore): make the group again.
        if ((err as Error).message.includes('NOGROUP')) ownPending = true;
        this.logger.warn(`webhook outbox relay: ${(err as Error).message}; retrying in 1 s`);
        await this.pause(1000);
      }
    }
  }

  private async ensureGroup(client: RedisClient): Promise<void> {
    try {
      await client.xgroup('CREATE', this.key, WebhookOutboxRelay.GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err as Error).message.includes('BUSYGROUP')) throw err;
    }
  }

  private async read(client: RedisClient, from: '0' | '>', block: boolean): Promise<StreamEntry[]> {
    const [group, consumer] = [WebhookOutboxRelay.GROUP, this.consumer];
    const reply = (
      block
        ? await client.xreadgroup(
            'GROUP',
            group,
            consumer,
            'COUNT',
            100,
            'BLOCK',
            1000,
            'STREAMS',
            this.key,
            from,
          )
        : await client.xreadgroup('GROUP', group, consumer, 'COUNT', 100, 'STREAMS', this.key, from)
    ) as StreamReply;
    return reply?.[0]?.[1] ?? [];
  }

  /** Takes over entries another (dead) relay read and left for longer than claimIdleMs. */
  private async claim(client: RedisClient): Promise<void> {
    let cursor = '0-0';
    do {
      const [next, entries] = (await client.call(
        'XAUTOCLAIM',
        this.key,
        WebhookOutboxRelay.GROUP,
        this.consumer,
        this.claimIdleMs,
        cursor,
        'COUNT',
        100,
      )) as [string, StreamEntry[]];
      if (entries.length > 0) {
        this.logger.log(`claimed ${entries.length} webhook event(s) left by another worker`);
        await this.relay(entries);
      }
      cursor = next;
    } while (cursor !== '0-0' && !this.stopping);
  }

  /** Enqueues the entries' jobs, then removes the entries. Returns how many it handled. */
  private async relay(entries: StreamEntry[]): Promise<number> {
    // XREADGROUP '0' lists entries deleted meanwhile with null fields.
    const live = entries.filter(([, flat]) => Array.isArray(flat));
    const jobs: Array<{ name: string; data: WebhookJobData; opts: JobsOptions }> = [];
    for (const [id, flat] of live) {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]] = flat[i + 1];
      const data = jobDataFromOutbox(fields);
      if (!data) {
        this.logger.error(`webhook outbox entry ${id} is malformed; dropped`);
        continue;
      }
      jobs.push({ name: WEBHOOK_JOB_NAME, data, opts: this.jobOptions(data) });
    }
    if (jobs.length > 0) await this.queue!.addBulk(jobs);
    const ids = entries.map(([id]) => id);
    if (ids.length > 0) {
      await this.redis
        .multi()
        .xack(this.key, WebhookOutboxRelay.GROUP, ...ids)
        .xdel(this.key, ...ids)
        .exec();
    }
    for (const { data } of jobs) {
      this.logger.debug(
        { task_id: data.task_id, project_id: data.project_id, event: data.event },
        'queued for delivery',
      );
    }
    return entries.length;
  }

  private jobOptions(data: WebhookJobData): JobsOptions {
    return {
      // BullMQ ignores an add whose id exists: relaying an entry twice delivers it once.
      jobId: data.webhook_id,
      attempts: this.config.webhooks.maxAttempts,
      backoff: { type: WEBHOOK_BACKOFF_TYPE },
      removeOnComplete: { age: 7 * DAY_S },
      removeOnFail: { age: 30 * DAY_S },
    };
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
