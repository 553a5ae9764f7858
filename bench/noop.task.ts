import { Module } from '@nestjs/common';
import { IsOptional, IsString } from 'class-validator';
import { QueueName, type TaskDefinition } from '@app/tasks';
import {
  TaskProcessorFor,
  type TaskOutput,
  type TaskProcessor,
} from '../apps/worker/src/runtime/task-processor';

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
  process(): Promise<TaskOutput> {
    return Promise.resolve({
      media: {
        kind: 'buffer',
        data: Buffer.from('{}'),
        extension: 'json',
        contentType: 'application/json',
      },
      metadata: {},
    });
  }
}

@Module({ providers: [BenchNoopProcessor] })
export class BenchNoopModule {}
