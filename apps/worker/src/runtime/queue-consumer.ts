import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type OnApplicationBootstrap, type Type } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { QueueName, TaskJobData } from '@app/tasks';
import type { Job, WorkerOptions } from 'bullmq';
import { TaskRunner } from './task-runner';

/**
 * BullMQ options of every consumer. A job whose worker died (SIGKILL, OOM) keeps its lock until
 * `lockDuration` runs out; another worker's stalled check (every `stalledInterval`) then puts it
 * back to wait and the runner takes the run over. The budget of lost runs is the record's
 * (claimRun: MAX_RETRY_ATTEMPTS runs of lost workers; a run this process lost its own lock on
 * charges nothing), so BullMQ's own stall limit is only a backstop far above it; a job BullMQ
 * gives up on is recorded failed (jobLost).
 */
export function consumerOptions(config: AppConfig): Partial<WorkerOptions> {
  return {
    autorun: false,
    lockDuration: config.worker.lockDurationMs,
    stalledInterval: config.worker.stalledIntervalMs,
    maxStalledCount: 10 * (config.tasks.maxRetryAttempts + 1),
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
      // A lock BullMQ could not renew is lost: the run stops (it can no longer finish its job).
      this.worker.on('lockRenewalFailed', (jobIds: string[]) => this.runner.locksLost(jobIds));
      this.trackCalls();
      this.worker.on('failed', (job, err) => {
        if (!job) return;
        this.runner
          .jobLost(job as Job<TaskJobData>, err)
          .catch((e: Error) => this.logger.error(`job ${job.id}: ${e.message}`));
      });
      this.worker.run().catch((err: Error) => this.logger.error(`worker stopped: ${err.message}`));
      this.logger.log(`consuming ${queue} with concurrency ${this.worker.concurrency}`);
    }

    /**
     * Counts this worker's calls of each job from fetch to the end of BullMQ's own bookkeeping
     * (its lock tracking is per job id, so a call that ends while a newer call of the same job
     * runs would drop the newer one's lock): the runner defers a job fetched again while an
     * earlier call of it is still in flight here.
     */
    private trackCalls(): void {
      const worker = this.worker;
      const runs = this.runner.runs;
      const processJob = worker.processJob.bind(worker);
      worker.processJob = async (job, token, fetchNext) => {
        const id = job.id ?? '';
        runs.callStarted(id);
        try {
          return await processJob(job, token, fetchNext);
        } finally {
          runs.callEnded(id);
        }
      };
    }

    // Three declared parameters (length 3): BullMQ hands the job's AbortSignal as the third.
    async process(job: Job<TaskJobData>, token?: string, signal?: AbortSignal): Promise<string> {
      return this.runner.run(job, token, signal);
    }
  }
  Object.defineProperty(QueueConsumer, 'name', { value: `QueueConsumer_${queue}` });
  return QueueConsumer;
}
