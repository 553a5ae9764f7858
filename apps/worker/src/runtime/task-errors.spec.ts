import { PayloadError } from '@app/payload';
import { InputFetchError } from '../inputs/input-fetch.error';
import { TaskValidationError } from '@app/tasks';
import { UnrecoverableError } from 'bullmq';
import {
  classifyError,
  isRetryable,
  PermanentTaskError,
  retryDelayMs,
  TaskTimeoutError,
} from './task-errors';

describe('classifyError', () => {
  it.each([
    [Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'network'],
    [new TypeError('fetch failed'), 'network'],
    [new Error('CUDA_ERROR_OUT_OF_MEMORY: out of memory'), 'gpu_memory'],
    [new Error('OOM when allocating tensor'), 'gpu_memory'],
    [Object.assign(new Error('Too Many Requests'), { status: 429 }), 'rate_limit'],
    [new Error('rate limit exceeded'), 'rate_limit'],
    [
      Object.assign(new Error('ENOSPC: no space left'), { code: 'ENOSPC', syscall: 'write' }),
      'filesystem',
    ],
    [new TaskValidationError(['task_data.x bad']), 'validation'],
    [new PermanentTaskError('nope'), 'validation'],
    [new UnrecoverableError('nope'), 'validation'],
    [new TaskTimeoutError(5), 'timeout'],
    [new Error('something odd'), 'default'],
  ])('%s → %s', (err, cls) => {
    expect(classifyError(err)).toBe(cls);
  });

  it('follows the fetcher: retryable fetch errors are network (or rate limit), others permanent', () => {
    const retryable = new InputFetchError(
      'task_data.style_guide',
      'http://x/a',
      true,
      'HTTP 503',
      503,
    );
    const gone = new InputFetchError('task_data.style_guide', 'http://x/a', false, 'HTTP 404', 404);
    const limited = new InputFetchError(
      'task_data.style_guide',
      'http://x/a',
      true,
      'HTTP 429',
      429,
    );
    expect(classifyError(retryable)).toBe('network');
    expect(classifyError(gone)).toBe('validation');
    expect(classifyError(limited)).toBe('rate_limit');
  });

  it('treats Payload errors like the fetcher: retryable ones as network (429: rate limit)', () => {
    expect(classifyError(new PayloadError('payload: HTTP 503', true, 503))).toBe('network');
    expect(classifyError(new PayloadError('payload: HTTP 429', true, 429))).toBe('rate_limit');
    expect(classifyError(new PayloadError('payload: HTTP 401', false, 401))).toBe('validation');
  });

  it('retries only the seed classes; delays double per attempt', () => {
    expect(
      ['network', 'gpu_memory', 'rate_limit', 'default'].every((c) => isRetryable(c as never)),
    ).toBe(true);
    expect(['validation', 'filesystem', 'timeout'].some((c) => isRetryable(c as never))).toBe(
      false,
    );
    expect(retryDelayMs('network', 1, 1)).toBe(30_000);
    expect(retryDelayMs('network', 2, 1)).toBe(60_000);
    expect(retryDelayMs('gpu_memory', 1, 1)).toBe(120_000);
    expect(retryDelayMs('rate_limit', 3, 1)).toBe(1_200_000);
    expect(retryDelayMs('default', 1, 0.5)).toBe(30_000);
  });
});
