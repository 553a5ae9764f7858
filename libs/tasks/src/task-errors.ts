import type { TaskStatus } from './records/task-status';

/** Domain errors of the task lifecycle; the API maps each to its status code. */
export class TaskNotFoundError extends Error {
  constructor(readonly taskId: string) {
    super(`Task ${taskId} not found`);
  }
}

export class TaskConflictError extends Error {
  constructor(
    readonly taskId: string,
    readonly status: TaskStatus,
    action: 'cancel' | 'retry',
  ) {
    super(
      action === 'cancel'
        ? `Task ${taskId} is ${status}; only queued or processing tasks can be cancelled`
        : `Task ${taskId} is ${status}; only failed or cancelled tasks can be retried`,
    );
  }
}

/** Input that breaks a contract: `messages` name the fields (e.g. `task_data.width must ...`). */
export class TaskValidationError extends Error {
  constructor(readonly messages: string[]) {
    super(messages.join('; '));
  }
}

export class QueueFullError extends Error {
  constructor(
    readonly queue: string,
    readonly retryAfterSeconds: number,
  ) {
    super(`Queue ${queue} is full; retry later`);
  }
}
