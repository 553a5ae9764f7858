import { Injectable } from '@nestjs/common';
import 'reflect-metadata';

/** What a processor sees of the task it runs. It never writes task status itself. */
export interface RunningTask<TData> {
  readonly taskId: string;
  readonly projectId: string;
  readonly taskType: string;
  /** `task_data`, already validated against the task type's contract. */
  readonly data: TData;
  /** 1 for the first run, 2 for the first automatic retry, ... */
  readonly attempt: number;
  /** Aborted when the task is cancelled, times out or the worker shuts down. */
  readonly signal: AbortSignal;
  /**
   * Reports progress of this run: `fraction` in 0..1 (stored monotonic), `step` a snake_case
   * name such as `generating_image`. Throws the abort reason if the task was cancelled.
   */
  progress(fraction: number, step: string): Promise<void>;
}

/** The media a processor made: bytes in memory, or a file the runner moves into storage. */
export type TaskMedia =
  | {
      readonly kind: 'buffer';
      readonly data: Buffer;
      readonly extension: string;
      readonly contentType: string;
    }
  | {
      readonly kind: 'file';
      readonly path: string;
      readonly extension: string;
      readonly contentType: string;
    };

export interface TaskOutput {
  readonly media: TaskMedia;
  /** Goes to `result.metadata` (resolution, format, ...); the runner adds file_size. */
  readonly metadata: Record<string, unknown>;
}

export interface TaskProcessor<TData = unknown> {
  process(task: RunningTask<TData>): Promise<TaskOutput>;
}

const TASK_PROCESSOR_TYPE = Symbol('task-processor:type');

/** Marks a class as the processor of one task type; the registry finds it through DI. */
export function TaskProcessorFor(taskType: string): ClassDecorator {
  return (target) => {
    Reflect.defineMetadata(TASK_PROCESSOR_TYPE, taskType, target);
    Injectable()(target);
  };
}

export function getProcessorTaskType(target: object): string | undefined {
  return Reflect.getMetadata(TASK_PROCESSOR_TYPE, target) as string | undefined;
}
