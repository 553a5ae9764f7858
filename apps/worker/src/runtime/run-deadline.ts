import { TaskTimeoutError } from './task-errors';

/**
 * The hard time limit of one run: the lower of the task type's own limit and TASK_TIMEOUT.
 * Aborts the run's controller with a TaskTimeoutError when it passes; `clear` ends the watch.
 */
export function startDeadline(
  limits: { typeSeconds?: number; configSeconds: number },
  controller: AbortController,
): { seconds: number; clear: () => void } {
  const seconds = Math.min(limits.typeSeconds ?? Infinity, limits.configSeconds);
  const timer = setTimeout(() => controller.abort(new TaskTimeoutError(seconds)), seconds * 1000);
  return { seconds, clear: () => clearTimeout(timer) };
}
