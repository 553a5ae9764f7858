import { Injectable, Logger } from '@nestjs/common';
import { AppMetricsRegistry, withTimeout } from '@app/observability';
import { ALL_QUEUES, TaskQueueService } from '@app/tasks';
import { Gauge } from 'prom-client';

/** Job states counted per queue; prioritized is where every waiting job sits (all have one). */
export const QUEUE_STATES = [
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'waiting-children',
  'completed',
  'failed',
] as const;

/** A scrape never waits longer than this for Redis. */
const QUEUE_SCRAPE_TIMEOUT_MS = 1500;

/**
 * The API's Prometheus series, in a registry of its own. Queue depth is exported here, not by
 * workers: the autoscaler must see the backlog when no worker runs (scale from zero).
 */
@Injectable()
export class ApiMetrics {
  readonly registry = new AppMetricsRegistry('api');
  private readonly logger = new Logger(ApiMetrics.name);

  constructor(queues: TaskQueueService) {
    const logger = this.logger;
    new Gauge({
      name: 'queue_depth',
      help: 'Jobs per queue and state, read from BullMQ at scrape time',
      labelNames: ['queue', 'state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        await Promise.all(
          ALL_QUEUES.map(async (name) => {
            try {
              const counts = await withTimeout(
                queues.queue(name).getJobCounts(...QUEUE_STATES),
                QUEUE_SCRAPE_TIMEOUT_MS,
              );
              for (const state of QUEUE_STATES)
                this.set({ queue: name, state }, counts[state] ?? 0);
            } catch (err) {
              // No series beats a stale or made-up one; the scrape itself still succeeds.
              logger.warn(`queue_depth of ${name} not read: ${(err as Error).message}`);
            }
          }),
        );
      },
    });
  }

  scrape(): Promise<string> {
    return this.registry.metrics();
  }
}
