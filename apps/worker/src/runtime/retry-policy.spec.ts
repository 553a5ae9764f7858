import { SEED_RETRY_LIMITS } from '@app/config';
import { RetryPolicy } from './retry-policy';

function policy(over: Partial<{ max: number; scale: number; limits: object }> = {}) {
  return new RetryPolicy({
    tasks: {
      maxRetryAttempts: over.max ?? 5,
      retryDelayScale: over.scale ?? 1,
      retryLimits: { ...SEED_RETRY_LIMITS, ...over.limits },
    },
  } as never);
}

describe('RetryPolicy', () => {
  it.each([
    ['network', 3],
    ['gpu_memory', 2],
    ['rate_limit', 5],
    ['default', 1],
  ] as const)('retries %s errors the seed number of times (%i)', (cls, times) => {
    const p = policy({ max: 20 });
    let retries: Record<string, number> = {};
    let made = 0;
    for (let attempt = 1; attempt < 50; attempt++) {
      const d = p.decide(cls, attempt, retries);
      if (!d.retry) {
        expect(d.reason).toContain(`at most ${times} times`);
        break;
      }
      retries = d.classRetries;
      made += 1;
    }
    expect(made).toBe(times);
  });

  it('never retries validation, file-system or timeout errors', () => {
    for (const cls of ['validation', 'filesystem', 'timeout'] as const) {
      expect(policy().decide(cls, 1, {})).toMatchObject({ retry: false });
    }
  });

  it('caps all classes together at MAX_RETRY_ATTEMPTS', () => {
    const p = policy({ max: 2 });
    expect(p.decide('network', 3, { network: 1, rate_limit: 1 })).toEqual({
      retry: false,
      reason: 'at most 2 retries (MAX_RETRY_ATTEMPTS)',
    });
    expect(p.decide('network', 2, { rate_limit: 1 })).toMatchObject({ retry: true });
  });

  it('doubles the class base delay per attempt, scaled', () => {
    const p = policy({ scale: 0.5 });
    expect(p.decide('network', 1, {})).toMatchObject({ delayMs: 15_000 });
    expect(p.decide('network', 3, { network: 2 })).toMatchObject({ delayMs: 60_000 });
    expect(p.decide('gpu_memory', 1, {})).toMatchObject({ delayMs: 60_000 });
  });

  it('counts the retry in the class it belongs to', () => {
    expect(policy().decide('rate_limit', 2, { network: 1 })).toMatchObject({
      classRetries: { network: 1, rate_limit: 1 },
    });
  });

  it('takes RETRY_LIMITS over the seed values', () => {
    expect(policy({ limits: { default: 0 } }).decide('default', 1, {})).toMatchObject({
      retry: false,
    });
  });
});
