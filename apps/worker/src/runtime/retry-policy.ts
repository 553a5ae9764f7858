import type { AppConfig } from '@app/config';
import { isRetryable, retryDelayMs, type ErrorClass } from './task-errors';

/** What to do after a failed attempt. */
export type RetryDecision =
  | {
      retry: true;
      delayMs: number;
      /** The task's retries per class, this one counted. */
      classRetries: Record<string, number>;
    }
  | { retry: false; reason: string };

/**
 * Seed 000's retry rule: an error class may be retried a number of times of its own (RETRY_LIMITS:
 * network 3, GPU memory 2, rate limit 5, other errors 1), all classes together at most
 * MAX_RETRY_ATTEMPTS times; validation, file-system and timeout errors never. The delay is the
 * class's base, doubled per attempt already made, scaled by RETRY_DELAY_SCALE.
 */
export class RetryPolicy {
  constructor(private readonly config: Pick<AppConfig, 'tasks'>) {}

  decide(
    cls: ErrorClass,
    attempt: number,
    classRetries: Readonly<Record<string, number>>,
  ): RetryDecision {
    if (!isRetryable(cls)) return { retry: false, reason: `${cls} errors are not retried` };
    const { retryLimits, maxRetryAttempts, retryDelayScale } = this.config.tasks;
    const done = classRetries[cls] ?? 0;
    const limit = retryLimits[cls];
    if (done >= limit) {
      return { retry: false, reason: `${cls} errors are retried at most ${limit} times` };
    }
    const total = Object.values(classRetries).reduce((a, b) => a + b, 0);
    if (total >= maxRetryAttempts) {
      return { retry: false, reason: `at most ${maxRetryAttempts} retries (MAX_RETRY_ATTEMPTS)` };
    }
    return {
      retry: true,
      delayMs: retryDelayMs(cls, attempt, retryDelayScale),
      classRetries: { ...classRetries, [cls]: done + 1 },
    };
  }
}
