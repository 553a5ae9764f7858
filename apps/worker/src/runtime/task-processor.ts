import { Injectable, type Type } from '@nestjs/common';
import 'reflect-metadata';
import type { TaskDefinition } from '@app/tasks';
import type { InputSafety } from '../safety/input-safety';

/** What a processor sees of the task it runs. It never writes task status itself. */
export interface RunningTask<TData> {
  readonly taskId: string;
  readonly projectId: string;
  readonly taskType: string;
  /** `task_data` as the task type's contract parsed it: validated, defaults filled in. */
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
  /**
   * The run's image safety check (`safety_check: true`; a no-op otherwise): hand it the input
   * images (`checkInputs`, or the InputFetcher's `safety` option) so that their scores are
   * reported and an unsafe one blocks the task. The output of image types is checked by the
   * runtime itself. Absent only where a test builds a RunningTask by hand.
   */
  readonly safety?: InputSafety;
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

const TASK_PROCESSOR_CONTRACT = Symbol('task-processor:contract');
const TASK_PROCESSOR_MODELS = Symbol('task-processor:models');

export interface TaskProcessorOptions {
  /**
   * Models of the ModelRepository this processor runs (by name). A worker serving the task type
   * loads and warms them up at boot (MODEL_PRELOAD=declared) and is not ready before; a processor
   * may still `use` others, loaded on first use.
   */
  readonly models?: readonly string[];
}

/**
 * Marks a class as the processor of one task type, given by its contract; the registry finds it
 * through DI. The class must process that contract's data: `@TaskProcessorFor(GENERATE_IMAGE_TASK)`
 * on a `TaskProcessor<ProcessAudioTaskData>` does not compile.
 */
export function TaskProcessorFor<TData extends object>(
  contract: TaskDefinition<TData>,
  options: TaskProcessorOptions = {},
): <C extends Type<TaskProcessor<TData>>>(target: C) => void {
  return (target) => {
    Reflect.defineMetadata(TASK_PROCESSOR_CONTRACT, contract, target);
    Reflect.defineMetadata(TASK_PROCESSOR_MODELS, options.models ?? [], target);
    Injectable()(target);
  };
}

/** The contract a class was marked with by @TaskProcessorFor, if any. */
export function getProcessorContract(target: object): TaskDefinition | undefined {
  return Reflect.getMetadata(TASK_PROCESSOR_CONTRACT, target) as TaskDefinition | undefined;
}

/** The models a class marked by @TaskProcessorFor declared. */
export function getProcessorModels(target: object): readonly string[] {
  return (
    (Reflect.getMetadata(TASK_PROCESSOR_MODELS, target) as readonly string[] | undefined) ?? []
  );
}
