/**
 * A Payload request failed. `retryable` says whether a later attempt may succeed (network errors,
 * timeouts, 408, 429, 5xx, an open circuit) or not (other 4xx: bad key, bad document). Messages
 * carry the method, path and status, never the API key.
 */
export class PayloadError extends Error {
  override readonly name = 'PayloadError';

  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    options?: { cause?: unknown; invalidFields?: readonly string[] },
  ) {
    super(message, { cause: options?.cause });
    this.invalidFields = options?.invalidFields ?? [];
  }

  /** Fields Payload named in its error answer (a ValidationError's `path`s), e.g. `task_id`. */
  readonly invalidFields: readonly string[];
}

/**
 * True when Payload refused a create because a document with this `task_id` exists: the media
 * collection declares `task_id` unique, and Payload v3 answers a unique-index violation (Mongo
 * 11000, Postgres 23505, SQLite UNIQUE) with 400 `{errors: [{name: 'ValidationError', message:
 * 'The following field is invalid: task_id', data: {errors: [{path: 'task_id', message: 'Value
 * must be unique'}]}}]}`. 409 is accepted too (a proxy or a custom endpoint).
 */
export function isDuplicateTaskIdError(err: unknown): boolean {
  return (
    err instanceof PayloadError &&
    (err.status === 400 || err.status === 409) &&
    (err.invalidFields.includes('task_id') || /\btask_id\b/.test(err.message))
  );
}

export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}
