import { Module } from '@nestjs/common';
import { IsInt, Max, Min } from 'class-validator';
import { QueueName, type TaskDefinition } from '@app/tasks';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../src/runtime/task-processor';
import { testSleepLog } from './test-sleep.task';

/** Test-only task type: keeps the CPU busy in synchronous chunks, like tensor work per batch. */
export class TestBusyTaskData {
  @IsInt()
  @Min(0)
  @Max(120_000)
  duration_ms!: number;

  /** Length of each synchronous chunk; the event loop runs between chunks. */
  @IsInt()
  @Min(1)
  @Max(60_000)
  chunk_ms!: number;
}

export const TEST_BUSY_TASK: TaskDefinition<TestBusyTaskData> = {
  type: 'test_busy',
  description: 'test only',
  queue: QueueName.CpuIntensive,
  mediaKind: 'audio',
  dataClass: TestBusyTaskData,
  estimateDuration: (d) => Math.ceil(d.duration_ms / 1000),
};

@TaskProcessorFor(TEST_BUSY_TASK)
export class TestBusyProcessor implements TaskProcessor<TestBusyTaskData> {
  async process(task: RunningTask<TestBusyTaskData>): Promise<TaskOutput> {
    testSleepLog.onRun?.(task.taskId, 'start');
    const { duration_ms, chunk_ms } = task.data;
    const started = Date.now();
    let chunks = 0;
    let spins = 0;
    while (Date.now() - started < duration_ms) {
      const end = Math.min(Date.now() + chunk_ms, started + duration_ms);
      // Synchronous: nothing else runs in this process meanwhile.
      while (Date.now() < end) spins += 1;
      chunks += 1;
      await task.progress((Date.now() - started) / duration_ms, 'crunching');
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    testSleepLog.onRun?.(task.taskId, 'finish');
    return {
      media: {
        kind: 'buffer',
        data: Buffer.from(JSON.stringify({ chunks })),
        extension: 'json',
        contentType: 'application/json',
      },
      metadata: { chunks, spins },
    };
  }
}

@Module({ providers: [TestBusyProcessor] })
export class TestBusyModule {}
