import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { REDIS_CLIENT, RedisClientFactory, type RedisClient } from '@app/redis';
import { bullPrefix, TaskRepository } from '@app/tasks';
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
 * Moves webhook events from the outbox streams (one per partition, written by the terminal
 * transition) into the `webhooks` delivery queue. Entries are read through a consumer group and
 * removed only after their job exists, under the event's id as job id (so a second relay of the
 * same entry adds nothing). The transition publishes on a channel named after the stream, so the
 * relay reads that stream at once; every `sweepMs` it reads all of them anyway (a nudge sent while
 * its subscriber was reconnecting is not lost). Entries a dead relay read but never removed are
 * claimed by the next after `claimIdleMs`; a restarted worker (same WORKER_ID) takes its own back
 * at once. Streams of different partitions live in different Redis Cluster slots, so each is
 * read with a command of its own.
 */
@Injectable()
export class WebhookOutboxRelay implements OnApplicationBootstrap, OnModuleDestroy {
  static readonly GROUP = 'relay';
  private readonly logger = new Logger(WebhookOutboxRelay.name);
  private readonly keys: string[];
  private readonly consumer: string;
  /** How long an entry stays with a relay that read it before another may take it. */
  claimIdleMs = 30_000;
  /** How often every stream is read without a nudge. */
  sweepMs = 5_000;
  private subscriber?: RedisClient;
  private queue?: Queue<WebhookJobData>;
  private loop?: Promise<void>;
  private stopping = false;
  private wake?: () => void;
  /** Streams a transition announced since the last read. */
  private readonly nudged = new Set<string>();
  private sweepNow = true;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly connections: RedisClientFactory,
    tasks: TaskRepository,
    private readonly config: AppConfig,
  ) {
    this.keys = tasks.webhookOutboxKeys();
    this.consumer = config.worker.id;
  }

  /**
   * Connections open only once the worker has booted (and close on destroy): a worker that fails
   * to boot leaves nothing open.
   */
  onApplicationBootstrap(): void {
    this.queue = new Queue<WebhookJobData>(WEBHOOKS_QUEUE, {
      connection: this.connections.bullConnection(),
      prefix: bullPrefix(this.config.redis.prefix, WEBHOOKS_QUEUE),
    });
    this.queue.on('error', (err) => this.logger.warn(`webhooks queue: ${err.message}`));
    const subscriber = this.connections.create('webhook-relay');
    subscriber.on('message', (channel: string) => {
      this.nudged.add(channel);
      this.wake?.();
    });
    // Subscriptions are renewed on reconnect; what was published meanwhile, a sweep finds.
    subscriber.on('ready', () => {
      this.sweepNow = true;
      this.wake?.();
    });
    subscriber.subscribe(...this.keys).catch((err: Error) => {
      if (!this.stopping) this.logger.warn(`webhook outbox nudges: ${err.message}`);
    });
    this.subscriber = subscriber;
    this.loop = this.run();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    this.subscriber?.disconnect();
    await this.loop;
    await this.queue?.close();
  }

  private async run(): Promise<void> {
    let lastClaim = 0;
    let lastSweep = 0;
    let ready = false;
    while (!this.stopping) {
      try {
        if (!ready) {
          // Groups first, then what this consumer read before a restart and never removed.
          await Promise.all(this.keys.map((key) => this.ensureGroup(key)));
          await Promise.all(this.keys.map((key) => this.drain(key, '0')));
          ready = true;
        }
        if (Date.now() - lastClaim >= Math.min(this.claimIdleMs, 10_000)) {
          lastClaim = Date.now();
          for (const key of this.keys) await this.claim(key);
        }
        let streams: string[];
        if (this.sweepNow || Date.now() - lastSweep >= this.sweepMs) {
          this.sweepNow = false;
          lastSweep = Date.now();
          streams = this.keys;
        } else {
          streams = [...this.nudged];
        }
        this.nudged.clear();
        await Promise.all(streams.map((key) => this.drain(key, '>')));
        if (this.nudged.size === 0 && !this.sweepNow && !this.stopping) {
          const next = Math.min(
            lastSweep + this.sweepMs,
            lastClaim + Math.min(this.claimIdleMs, 10_000),
          );
          await this.pause(Math.max(10, next - Date.now()));
        }
      } catch (err) {
        if (this.stopping) break;
        if ((err as Error).message.includes('NOGROUP')) ready = false;
        this.logger.warn(`webhook outbox relay: ${(err as Error).message}; retrying in 1 s`);
        await this.pause(1000);
      }
    }
  }

  private async ensureGroup(key: string): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', key, WebhookOutboxRelay.GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err as Error).message.includes('BUSYGROUP')) throw err;
    }
  }

  /** Reads and relays the stream's entries (`0`: this consumer's pending, `>`: new) until none. */
  private async drain(key: string, from: '0' | '>'): Promise<void> {
    while (!this.stopping) {
      const reply = (await this.redis.xreadgroup(
        'GROUP',
        WebhookOutboxRelay.GROUP,
        this.consumer,
        'COUNT',
        100,
        'STREAMS',
        key,
        from,
      )) as StreamReply;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) return;
      await this.relay(key, entries);
      if (entries.length < 100) return;
    }
  }

  /** Takes over entries another (dead) relay read and left for longer than claimIdleMs. */
  private async claim(key: string): Promise<void> {
    let cursor = '0-0';
    do {
      const [next, entries] = (await this.redis.call(
        'XAUTOCLAIM',
        key,
        WebhookOutboxRelay.GROUP,
        this.consumer,
        this.claimIdleMs,
        cursor,
        'COUNT',
        100,
      )) as [string, StreamEntry[]];
      if (entries.length > 0) {
        this.logger.log(`claimed ${entries.length} webhook event(s) left by another worker`);
        await this.relay(key, entries);
      }
      cursor = next;
    } while (cursor !== '0-0' && !this.stopping);
  }

  /** Enqueues the entries' jobs, then removes the entries. Returns how many it handled. */
  private async relay(key: string, entries: StreamEntry[]): Promise<number> {
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
        .xack(key, WebhookOutboxRelay.GROUP, ...ids)
        .xdel(key, ...ids)
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
