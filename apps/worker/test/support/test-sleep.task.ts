import { Module } from '@nestjs/common';
import { IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';
import { QueueName, type TaskDefinition } from '@app/tasks';
import { PermanentTaskError } from '../../src/runtime/task-errors';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../src/runtime/task-processor';

/** Test-only task type: waits in steps, can fail on purpose, returns a small text file. */
export class TestSleepTaskData {
  @IsInt()
  @Min(0)
  @Max(600_000)
  duration_ms!: number;

  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1000)
  steps?: number;

  /** Fail the first `fail_times` runs (counted per task) with an error of this kind. */
  @IsOptional()
  @IsInt()
  @Min(0)
  fail_times?: number;

  @IsOptional()
  @IsIn(['network', 'validation', 'default', 'gpu_memory'])
  fail_kind?: 'network' | 'validation' | 'default' | 'gpu_memory';

  /** Ignore the abort signal (to test the runner's hard limit). */
  @IsOptional()
  @IsIn([true, false])
  ignore_signal?: boolean;
}

export const TEST_SLEEP_TASK: TaskDefinition<TestSleepTaskData> = {
  type: 'test_sleep',
  description: 'test only',
  queue: QueueName.CpuIntensive,
  mediaKind: 'audio',
  dataClass: TestSleepTaskData,
  estimateDuration: (d) => Math.ceil(d.duration_ms / 1000),
};

export const TEST_TIMEOUT_TASK: TaskDefinition<TestSleepTaskData> = {
  ...TEST_SLEEP_TASK,
  type: 'test_timeout',
  timeoutSeconds: 1,
};

/** What the processor saw, observable from the test (same process). */
export const testSleepLog = {
  runs: new Map<string, number>(),
  aborted: new Set<string>(),
  finished: new Set<string>(),
  /** Called as a run starts and as it finishes (a child worker process reports them). */
  onRun: undefined as ((taskId: string, event: 'start' | 'finish') => void) | undefined,
  reset() {
    this.runs.clear();
    this.aborted.clear();
    this.finished.clear();
  },
};

class SleepBase implements TaskProcessor<TestSleepTaskData> {
  async process(task: RunningTask<TestSleepTaskData>): Promise<TaskOutput> {
    const run = (testSleepLog.runs.get(task.taskId) ?? 0) + 1;
    testSleepLog.runs.set(task.taskId, run);
    testSleepLog.onRun?.(task.taskId, 'start');
    const {
      duration_ms,
      steps = 10,
      fail_times = 0,
      fail_kind = 'default',
      ignore_signal,
    } = task.data;
    if (run <= fail_times) {
      if (fail_kind === 'validation') throw new PermanentTaskError(`bad input (run ${run})`);
      if (fail_kind === 'network')
        throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:80'), {
          code: 'ECONNREFUSED',
        });
      if (fail_kind === 'gpu_memory') throw new Error('CUDA out of memory');
      throw new Error(`boom (run ${run})`);
    }
    for (let i = 0; i < steps; i++) {
      if (task.signal.aborted && !ignore_signal) {
        testSleepLog.aborted.add(task.taskId);
        throw task.signal.reason;
      }
      try {
        await task.progress(i / steps, i < steps / 2 ? 'warming_up' : 'sleeping');
      } catch (err) {
        if (task.signal.aborted) testSleepLog.aborted.add(task.taskId);
        throw err;
      }
      await new Promise((r) => setTimeout(r, duration_ms / steps));
    }
    testSleepLog.finished.add(task.taskId);
    testSleepLog.onRun?.(task.taskId, 'finish');
    return {
      media: {
        kind: 'buffer',
        data: Buffer.from(JSON.stringify({ slept_ms: duration_ms })),
        extension: 'json',
        contentType: 'application/json',
      },
      metadata: { slept_ms: duration_ms, run },
    };
  }
}

@TaskProcessorFor(TEST_SLEEP_TASK)
export class TestSleepProcessor extends SleepBase {}

@TaskProcessorFor(TEST_TIMEOUT_TASK)
export class TestTimeoutProcessor extends SleepBase {}

@Module({ providers: [TestSleepProcessor, TestTimeoutProcessor] })
export class TestProcessorsModule {}
