import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { shownUrl, UnsafeUrlError, UrlPolicy } from '@app/net';
import { RedisClientFactory } from '@app/redis';
import { StorageDriver } from '@app/storage';
import { bullPrefix, TaskRepository } from '@app/tasks';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import { WEBHOOK_BACKOFF_TYPE, webhookRetryDelay } from './webhook.backoff';
import { WebhookSigner } from './webhook.signer';
import { WebhookDeliveryEvents } from './webhook-delivery.events';
import { buildWebhookPayload, WEBHOOKS_QUEUE, type WebhookJobData } from './webhook-event';
import { WebhookStateStore, type WebhookAttemptPatch } from './webhook-state.store';

/** What one POST came to: an HTTP status, or an error before any status. */
type AttemptResult = { status: number } | { error: string; refused: boolean };

/**
 * Delivers webhook events from the `webhooks` queue: one signed POST per attempt, through the
 * URL gate, never following redirects. 2xx is delivered; 410 Gone or a refused URL gives up at
 * once; anything else (another status, a network error, the timeout) is retried on the
 * Standard Webhooks schedule up to WEBHOOK_MAX_ATTEMPTS. Each attempt is recorded in the task's
 * `webhook` state; the task's own status is never touched.
 */
@Injectable()
export class WebhookDeliveryWorker implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(WebhookDeliveryWorker.name);
  private worker?: Worker<WebhookJobData>;

  constructor(
    private readonly config: AppConfig,
    private readonly tasks: TaskRepository,
    private readonly state: WebhookStateStore,
    private readonly signer: WebhookSigner,
    private readonly urls: UrlPolicy,
    private readonly storage: StorageDriver,
    private readonly events: WebhookDeliveryEvents,
    private readonly connections: RedisClientFactory,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.webhooks.derivedSecret) {
      this.logger.warn(
        'WEBHOOK_SECRET is not set: webhooks are signed with a secret derived from API_KEYS and ' +
          "this deployment's salt in Redis (it changes when the keys rotate); set WEBHOOK_SECRET " +
          'and give it to your receivers',
      );
    }
    const scale = this.config.webhooks.retryScale;
    this.worker = new Worker<WebhookJobData>(WEBHOOKS_QUEUE, (job) => this.deliver(job), {
      connection: this.connections.bullConnection(),
      prefix: bullPrefix(this.config.redis.prefix, WEBHOOKS_QUEUE),
      concurrency: this.config.webhooks.concurrency,
      // An attempt lasts at most WEBHOOK_TIMEOUT_MS: its lock must outlive it, or a slow receiver
      // would make the job look stalled and get a second POST.
      lockDuration: Math.max(30_000, 3 * this.config.webhooks.timeoutMs),
      autorun: false,
      settings: {
        backoffStrategy: (attemptsMade, type) =>
          type === WEBHOOK_BACKOFF_TYPE ? webhookRetryDelay(attemptsMade, scale) : 0,
      },
    });
    this.worker.on('error', (err) => this.logger.warn(`webhook worker: ${err.message}`));
    this.worker.run().catch((err: Error) => this.logger.error(`webhook worker: ${err.message}`));
  }

  async onModuleDestroy(): Promise<void> {
    // Waits for deliveries in flight (each bounded by WEBHOOK_TIMEOUT_MS).
    await this.worker?.close();
  }

  /** One attempt; throws to have BullMQ retry it (or, UnrecoverableError, to give up). */
  async deliver(job: Job<WebhookJobData>): Promise<void> {
    const data = job.data;
    const attempt = job.attemptsMade + 1;
    const maxAttempts = job.opts.attempts ?? 1;
    const fields = { task_id: data.task_id, project_id: data.project_id, event: data.event };
    const task = await this.tasks.get(data.task_id);
    if (!task?.callback_url) {
      this.logger.warn(fields, 'task or its callback_url is gone; event dropped');
      return;
    }
    const outcome = await this.post(task.callback_url, data);
    const now = new Date();
    const status = 'status' in outcome ? outcome.status : null;
    if (status !== null && status >= 200 && status < 300) {
      await this.record(data, attempt, status, 'delivered', {
        state: 'delivered',
        last_status: status,
        last_error: null,
        delivered_at: now.toISOString(),
        next_attempt_at: null,
      });
      this.logger.log(fields, `delivered to ${shownUrl(task.callback_url)} (attempt ${attempt})`);
      return;
    }
    const error = 'status' in outcome ? `HTTP ${outcome.status}` : outcome.error;
    const permanent = status === 410 || ('refused' in outcome && outcome.refused);
    const last = permanent || attempt >= maxAttempts;
    const delay = webhookRetryDelay(attempt, this.config.webhooks.retryScale);
    await this.record(data, attempt, status, last ? 'failed' : 'retrying', {
      state: last ? 'failed' : 'pending',
      last_status: status,
      last_error: error,
      delivered_at: null,
      next_attempt_at: last ? null : new Date(now.getTime() + delay).toISOString(),
    });
    const where = shownUrl(task.callback_url);
    if (last) {
      this.logger.warn(fields, `to ${where} given up after attempt ${attempt}: ${error}`);
      throw new UnrecoverableError(error);
    }
    this.logger.log(
      fields,
      `to ${where} attempt ${attempt} failed (${error}); retry in ${delay} ms`,
    );
    throw new Error(error);
  }

  private async post(url: string, data: WebhookJobData): Promise<AttemptResult> {
    const timeoutMs = this.config.webhooks.timeoutMs;
    try {
      const body = JSON.stringify(await buildWebhookPayload(data, this.storage));
      const response = await this.urls.fetch(url, {
        field: 'callback_url',
        method: 'POST',
        headers: {
          ...this.signer.headers(data.webhook_id, body),
          'content-type': 'application/json',
          'user-agent': 'ai-movie-task-service-webhooks',
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
        maxRedirects: 0,
      });
      // The status is all we need; the body is discarded (and never stored).
      await response.body?.cancel().catch(() => undefined);
      return { status: response.status };
    } catch (err) {
      if (err instanceof UnsafeUrlError) return { error: err.message, refused: true };
      const e = err as Error;
      if (e.name === 'TimeoutError') {
        return { error: `no answer within ${timeoutMs} ms`, refused: false };
      }
      const cause = (e.cause as Error | undefined)?.message;
      return { error: cause ? `${e.message}: ${cause}` : e.message, refused: false };
    }
  }

  private async record(
    data: WebhookJobData,
    attempt: number,
    status: number | null,
    outcome: 'delivered' | 'failed' | 'retrying',
    patch: WebhookAttemptPatch,
  ): Promise<void> {
    this.events.emit({
      outcome,
      task_id: data.task_id,
      project_id: data.project_id,
      attempt,
      status,
    });
    await this.state.recordAttempt(data.task_id, data.webhook_id, patch, attempt);
  }
}
