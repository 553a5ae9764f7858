import { Injectable, Logger } from '@nestjs/common';
import type { TaskRecord } from '@app/tasks';
import type { ErrorClass } from './task-errors';

/** What happened to a run; emitted by the TaskRunner, consumed by metrics, heartbeats, ... */
export type TaskEvent =
  | { type: 'started'; task: TaskRecord; attempt: number; queueWaitMs: number }
  | { type: 'completed'; task: TaskRecord; attempt: number; durationMs: number }
  | {
      type: 'failed';
      task: TaskRecord;
      attempt: number;
      durationMs: number;
      errorClass: ErrorClass;
    }
  | {
      type: 'retry_scheduled';
      task: TaskRecord;
      attempt: number;
      durationMs: number;
      errorClass: ErrorClass;
      delayMs: number;
    }
  | { type: 'cancelled'; task: TaskRecord; attempt: number; durationMs: number };

export type TaskEventListener = (event: TaskEvent) => void;

/** Synchronous fan-out; a listener that throws is logged and never disturbs the run. */
@Injectable()
export class TaskEvents {
  private readonly logger = new Logger(TaskEvents.name);
  private readonly listeners: TaskEventListener[] = [];

  on(listener: TaskEventListener): void {
    this.listeners.push(listener);
  }

  emit(event: TaskEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn(`task event listener failed on ${event.type}: ${(err as Error).message}`);
      }
    }
  }
}
