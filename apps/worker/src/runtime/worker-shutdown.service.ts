import {
  Injectable,
  Logger,
  type INestApplicationContext,
  type OnModuleDestroy,
} from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { WorkerHost } from '@nestjs/bullmq';
import { AppConfig } from '@app/config';
import type { Worker } from 'bullmq';
import { WorkerReadiness } from '../health/worker-readiness';
import { TaskRunner } from './task-runner';

/** How long past the grace period a stopping worker may take before it is forced to exit. */
export const SHUTDOWN_EXIT_MARGIN_MS = 5000;

/**
 * Stops the worker in order. On SIGTERM/SIGINT: readiness goes down, every consumer stops
 * fetching jobs, running tasks get SHUTDOWN_GRACE seconds to finish, and those still running
 * then are handed back to the queue (record `queued`, job back to wait) for another worker to
 * start at once. Only then does Nest close the rest (processors, Redis) and the process exits;
 * if anything hangs, it is forced out SHUTDOWN_EXIT_MARGIN_MS after the grace period.
 *
 * A programmatic `app.close()` without a signal (tests, embedding) drains with no grace.
 */
@Injectable()
export class WorkerShutdownService implements OnModuleDestroy {
  private readonly logger = new Logger(WorkerShutdownService.name);
  private draining?: Promise<void>;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly runner: TaskRunner,
    private readonly readiness: WorkerReadiness,
    private readonly config: AppConfig,
  ) {}

  /** Nest's destroy hooks: a close that did not come through `handleSignals` still drains. */
  async onModuleDestroy(): Promise<void> {
    await this.drain(0);
  }

  /**
   * Stops consuming and waits up to `graceMs` for running tasks, then hands the rest back.
   * Idempotent: later calls share the first drain.
   */
  drain(graceMs = this.config.worker.shutdownGraceSeconds * 1000): Promise<void> {
    this.draining ??= this.run(graceMs);
    return this.draining;
  }

  /**
   * Installs the signal handlers of a worker process (instead of Nest's enableShutdownHooks,
   * whose destroy hooks would tear processors down under running tasks).
   */
  handleSignals(
    app: INestApplicationContext,
    signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
  ): void {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        this.logger.warn(`${signal} again: already stopping`);
        return;
      }
      stopping = true;
      const graceMs = this.config.worker.shutdownGraceSeconds * 1000;
      const bound = graceMs + SHUTDOWN_EXIT_MARGIN_MS;
      setTimeout(() => {
        this.logger.error(`shutdown still not done after ${bound} ms; exiting anyway`);
        process.exit(1);
      }, bound).unref();
      this.logger.log(`${signal}: stopping; running tasks get up to ${graceMs / 1000} s`);
      this.drain(graceMs)
        .catch((err: Error) => this.logger.error(`drain failed: ${err.message}`))
        .then(() => app.close())
        .then(
          () => process.exit(0),
          (err: Error) => {
            this.logger.error(`shutdown failed: ${err.message}`);
            process.exit(1);
          },
        );
    };
    for (const signal of signals) process.on(signal, onSignal);
  }

  private async run(graceMs: number): Promise<void> {
    this.readiness.markStopping();
    const started = Date.now();
    const workers = this.consumers();
    // close() without force: the worker fetches no more jobs and waits for its active ones.
    const closed = Promise.allSettled(workers.map((w) => w.close())).then(() => 'closed' as const);
    const running = this.runner.activeTaskIds();
    if (running.length > 0) {
      this.logger.log(`waiting up to ${graceMs} ms for ${running.length} running task(s)`);
    }
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace'>((resolve) => {
      timer = setTimeout(() => resolve('grace'), graceMs);
    });
    const outcome = await Promise.race([closed, graceOver]);
    clearTimeout(timer);
    if (outcome === 'grace') {
      const left = this.runner.activeTaskIds();
      if (left.length > 0) {
        this.logger.warn(`grace period over: handing back ${left.join(', ')}`);
      }
      await this.runner.handBackAll();
      await closed;
    }
    this.logger.log(`consumers stopped after ${Date.now() - started} ms`);
  }

  private consumers(): Worker[] {
    const workers: Worker[] = [];
    for (const { instance } of this.discovery.getProviders()) {
      if (!(instance instanceof WorkerHost)) continue;
      try {
        workers.push(instance.worker);
      } catch {
        // a consumer whose worker was never created has nothing to stop
      }
    }
    return workers;
  }
}
