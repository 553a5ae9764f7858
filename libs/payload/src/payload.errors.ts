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
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
}
