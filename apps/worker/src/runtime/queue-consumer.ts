import { Processor, WorkerHost } from '@nestjs/bullmq';
import { Inject, Logger, type OnApplicationBootstrap, type Type } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { QueueName, TaskJobData } from '@app/tasks';
import type { Job } from 'bullmq';
import { TaskRunner } from './task-runner';

/**
 * The BullMQ consumer of one queue: hands every job to the TaskRunner. It starts polling only
 * after boot (autorun off), once the processor registry has been checked and tfjs is up.
 */
export function queueConsumer(queue: QueueName): Type<WorkerHost> {
  @Processor(queue, { autorun: false })
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
