import type { Type } from '@nestjs/common';
import type { MediaKind } from '@app/projects';
import type { QueueName } from '../queues';

/**
 * A task type's contract: everything the API and the worker must agree on, and nothing that
 * needs a GPU. The api validates `task_data` against `dataClass` at submit; the worker parses it
 * again before running the processor.
 */
export interface TaskDefinition<TData extends object = object> {
  readonly type: string;
  readonly description: string;
  readonly queue: QueueName;
  /** The kind of media it produces: the storage folder of its output, its Payload media type. */
  readonly mediaKind: MediaKind;
  /** class-validator DTO of `task_data`; also its Swagger schema. */
  readonly dataClass: Type<TData>;
  /** Seconds a typical run of this input takes on a GPU worker (what `estimated_duration` says). */
  estimateDuration(data: TData): number;
  /** Hard time limit of one run, seconds; the global TASK_TIMEOUT applies when absent or larger. */
  readonly timeoutSeconds?: number;
}
