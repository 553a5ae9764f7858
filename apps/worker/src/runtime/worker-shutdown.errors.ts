/**
 * Why a run is stopped when its worker shuts down before it could finish: not the task's fault,
 * so the runner hands the task back to the queue without charging an attempt.
 */
export class WorkerShutdownError extends Error {
  constructor(message = 'worker shutting down') {
    super(message);
    this.name = 'WorkerShutdownError';
  }
}

/** BullMQ's reason for failing a job whose worker was lost more often than maxStalledCount. */
export const STALLED_LIMIT_REASON = 'job stalled more than allowable limit';
