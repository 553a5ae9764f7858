import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type OnApplicationBootstrap, type Type } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { QueueName, TaskJobData } from '@app/tasks';
import type { Job, WorkerOptions } from 'bullmq';
import { TaskRunner } from './task-runner';

/**
 * BullMQ options of every consumer. A job whose worker died (SIGKILL, OOM) keeps its lock until
 * `lockDuration` runs out; another worker's stalled check (every `stalledInterval`) then puts it
 * back to wait and the runner takes the run over. A job may be lost that way as many times as
 * the task may be retried; one more and BullMQ fails it, which the runner records (jobLost).
 */
export function consumerOptions(config: AppConfig): Partial<WorkerOptions> {
  return {
    autorun: false,
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    maxStalledCount: config.tasks.maxRetryAttempts + 1,
  };
}

/**
 * The BullMQ consumer of one queue: hands every job to the TaskRunner. It starts polling only
 * after boot (autorun off), once the processor registry has been checked and tfjs is up.
 */
export function queueConsumer(queue: QueueName, config: AppConfig): Type<WorkerHost> {
  @Processor(queue, consumerOptions(config))
  class QueueConsumer extends WorkerHost implements OnApplicationBootstrap {
    private readonly logger = new Logger(`QueueConsumer:${queue}`);

    constructor(
      @Inject(TaskRunner) private readonly runner: TaskRunner,
      @Inject(AppConfig) private readonly config: AppConfig,
    ) {
      super();
    }

    onApplicationBootstrap(): void {
      this.worker.concurrency = this.config.worker.concurrency[queue];
      // Connection drops, lost locks: BullMQ retries itself; without a listener it would print
      // them to the console.
      this.worker.on('error', (err) => this.logger.warn(`${queue}: ${err.message}`));
      this.worker.on('failed', (job, err) => {
        if (!job) return;
        this.runner
          .jobLost(job as Job<TaskJobData>, err)
          .catch((e: Error) => this.logger.error(`job ${job.id}: ${e.message}`));
      });
      this.worker.run().catch((err: Error) => this.logger.error(`worker stopped: ${err.message}`));
      this.logger.log(`consuming ${queue} with concurrency ${this.worker.concurrency}`);
    }

    // Three declared parameters (length 3): BullMQ hands the job's AbortSignal as the third.
    async process(job: Job<TaskJobData>, token?: string, signal?: AbortSignal): Promise<string> {
      return this.runner.run(job, token, signal);
    }
  }
  Object.defineProperty(QueueConsumer, 'name', { value: `QueueConsumer_${queue}` });
  return QueueConsumer;
}
