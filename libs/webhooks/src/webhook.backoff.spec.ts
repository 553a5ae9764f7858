import { webhookRetryDelay, WEBHOOK_RETRY_SCHEDULE_MS } from './webhook.backoff';

describe('webhookRetryDelay', () => {
  it('follows the Standard Webhooks schedule, the last delay repeating', () => {
    const minutes = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => webhookRetryDelay(n) / 60_000);
    expect(minutes).toEqual([5 / 60, 5, 30, 120, 300, 600, 600, 600, 600]);
  });

  it('spreads 10 attempts over more than a day (hours, not seconds)', () => {
    let total = 0;
    for (let attempt = 1; attempt < 10; attempt++) total += webhookRetryDelay(attempt);
    expect(total).toBeGreaterThan(24 * 3600_000);
  });

  it('scales every delay by WEBHOOK_RETRY_SCALE', () => {
    expect(webhookRetryDelay(1, 0.001)).toBe(5);
    expect(webhookRetryDelay(2, 0.001)).toBe(300);
    expect(webhookRetryDelay(0)).toBe(WEBHOOK_RETRY_SCHEDULE_MS[0]);
  });
});
