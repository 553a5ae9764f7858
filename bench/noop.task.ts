import { Module } from '@nestjs/common';
import { IsOptional, IsString } from 'class-validator';
import { QueueName, type TaskDefinition } from '@app/tasks';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../apps/worker/src/runtime/task-processor';

/** `note` that makes the task report progress once (the Redis cost benchmark's progress figure). */
export const BENCH_NOOP_PROGRESS_NOTE = 'report_progress';

/** Benchmark-only task type: does no work and returns two bytes. */
export class BenchNoopTaskData {
  @IsOptional()
  @IsString()
  note?: string;
}

export const BENCH_NOOP_TASK: TaskDefinition<BenchNoopTaskData> = {
  type: 'bench_noop',
  description: 'benchmark only: no work',
  queue: QueueName.CpuIntensive,
  mediaKind: 'audio',
  dataClass: BenchNoopTaskData,
  estimateDuration: () => 0,
};

@TaskProcessorFor(BENCH_NOOP_TASK)
export class BenchNoopProcessor implements TaskProcessor<BenchNoopTaskData> {
  async process(task: RunningTask<BenchNoopTaskData>): Promise<TaskOutput> {
    if (task.data.note === BENCH_NOOP_PROGRESS_NOTE) await task.progress(0.5, 'bench_step');
    return {
      media: {
        kind: 'buffer',
        data: Buffer.from('{}'),
        extension: 'json',
        contentType: 'application/json',
      },
      metadata: {},
    };
  }
}

@Module({ providers: [BenchNoopProcessor] })
export class BenchNoopModule {}
