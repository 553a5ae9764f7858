import { PayloadError } from '@app/payload';
import { InputFetchError } from '../inputs/input-fetch.error';
import { ContentBlockedError } from '../safety/content-blocked.error';
import { TaskValidationError } from '@app/tasks';
import { UnrecoverableError } from 'bullmq';

/** Seed 000 "Task Retry Logic": error classes and their base delays. */
export type ErrorClass =
  | 'network'
  | 'gpu_memory'
  | 'rate_limit'
  | 'default'
  | 'validation'
  | 'filesystem'
  | 'timeout'
  /** An image of a `safety_check` task scored above SAFETY_BLOCK_THRESHOLD: never retried. */
  | 'content_blocked';

export const BASE_DELAY_SECONDS: Record<
  'network' | 'gpu_memory' | 'rate_limit' | 'default',
  number
> = {
  network: 30,
  gpu_memory: 120,
  rate_limit: 300,
  default: 60,
};

/** The task was cancelled while it ran. */
export class TaskCancelledError extends Error {
  override readonly name = 'TaskCancelledError';
  constructor() {
    super('task cancelled');
  }
}

/**
 * The run no longer owns its task: another run took it over (this process's lock lapsed and the
 * job ran elsewhere), or another actor moved it on. It stops without touching the task.
 */
export class RunSupersededError extends Error {
  override readonly name = 'RunSupersededError';
  constructor(message = 'the task is now owned by another run') {
    super(message);
  }
}

/**
 * BullMQ could not renew the job's lock (it lapsed: a blocked loop, a Redis failover, a deleted
 * key): the job is no longer this run's to finish. The run stops and hands the task back; its
 * takeover charges no attempt.
 */
export class LockLostError extends Error {
  override readonly name = 'LockLostError';
  constructor() {
    super("the job's lock was lost");
  }
}

/** The run passed its hard time limit. */
export class TaskTimeoutError extends Error {
  override readonly name = 'TaskTimeoutError';
  constructor(readonly seconds: number) {
    super(`task exceeded its time limit of ${seconds} s`);
  }
}

/** A processor's way to say "this input can never work": no retry. */
export class PermanentTaskError extends Error {
  override readonly name = 'PermanentTaskError';
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);
const FS_CODES = new Set([
  'ENOENT',
  'EACCES',
  'EPERM',
  'ENOSPC',
  'EISDIR',
  'ENOTDIR',
  'EROFS',
  'EMFILE',
  'EEXIST',
]);

export function classifyError(err: unknown): ErrorClass {
  if (err instanceof TaskTimeoutError) return 'timeout';
  if (err instanceof ContentBlockedError) return 'content_blocked';
  if (
    err instanceof TaskValidationError ||
    err instanceof PermanentTaskError ||
    err instanceof UnrecoverableError
  ) {
    return 'validation';
  }
  if (err instanceof InputFetchError) {
    if (!err.retryable) return 'validation';
    return err.status === 429 ? 'rate_limit' : 'network';
  }
  // Payload registration: an outage (5xx, timeout, open circuit) is a network problem.
  if (err instanceof PayloadError) {
    if (!err.retryable) return 'validation';
    return err.status === 429 ? 'rate_limit' : 'network';
  }
  const e = err as {
    code?: string;
    cause?: { code?: string };
    message?: string;
    status?: number;
    syscall?: string;
  };
  const message = String(e?.message ?? err);
  if (/out of memory|\bOOM\b|ResourceExhausted|CUDA_ERROR_OUT_OF_MEMORY/i.test(message))
    return 'gpu_memory';
  if (e?.status === 429 || /rate.?limit/i.test(message)) return 'rate_limit';
  const code = e?.code ?? e?.cause?.code;
  if ((code && NETWORK_CODES.has(code)) || /fetch failed|socket hang up|network/i.test(message))
    return 'network';
  if (code && FS_CODES.has(code) && e?.syscall) return 'filesystem';
  return 'default';
}

export function isRetryable(cls: ErrorClass): cls is keyof typeof BASE_DELAY_SECONDS {
  return cls in BASE_DELAY_SECONDS;
}

/** Base delay for the class, doubled for each attempt already made (attempt 1 → base). */
export function retryDelayMs(
  cls: keyof typeof BASE_DELAY_SECONDS,
  attempt: number,
  scale: number,
): number {
  return Math.round(BASE_DELAY_SECONDS[cls] * 2 ** (attempt - 1) * 1000 * scale);
}
