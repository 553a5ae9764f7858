/** Name of our BullMQ custom backoff (jobs say `backoff: { type }`, the worker computes it). */
export const WEBHOOK_BACKOFF_TYPE = 'standard-webhooks';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;

/**
 * Delays before attempts 2, 3, ... (the Standard Webhooks schedule: immediately, then 5 s, 5 min,
 * 30 min, 2 h, 5 h, 10 h, 10 h, ...); the last one repeats.
 */
export const WEBHOOK_RETRY_SCHEDULE_MS: readonly number[] = [
  5 * SECOND,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
];

/** Delay after failed attempt `attempt` (1-based), times WEBHOOK_RETRY_SCALE. */
export function webhookRetryDelay(attempt: number, scale = 1): number {
  const index = Math.min(Math.max(attempt, 1), WEBHOOK_RETRY_SCHEDULE_MS.length) - 1;
  return Math.round(WEBHOOK_RETRY_SCHEDULE_MS[index] * scale);
}
