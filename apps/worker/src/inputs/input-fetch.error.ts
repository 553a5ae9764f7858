import { shownUrl } from '@app/net';
import { parseS3Reference } from '@app/projects';

/**
 * A remote input could not be fetched. `retryable` tells the runner whether another attempt may
 * succeed (network errors, timeouts, 5xx, 408, 429) or not (4xx, too big, wrong type, bad URL).
 * `url` is origin + path only: query strings often carry signatures or tokens.
 */
export class InputFetchError extends Error {
  override readonly name = 'InputFetchError';

  constructor(
    readonly field: string,
    readonly url: string,
    readonly retryable: boolean,
    detail: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(`${field}: could not fetch ${url}: ${detail}`, options);
  }

  /** An input that was fetched but does not decode as an image (not retryable). */
  static undecodableImage(field: string, url: string, err: unknown): InputFetchError {
    return new InputFetchError(
      field,
      InputFetchError.redactUrl(url),
      false,
      `not a decodable image (${err instanceof Error ? err.message : String(err)})`,
      undefined,
      { cause: err },
    );
  }

  /** The URL as errors and logs show it: origin and path, never the query or credentials. */
  static redactUrl(url: string): string {
    if (url.startsWith('s3://')) return parseS3Reference(url) ? url : '(invalid s3 reference)';
    return shownUrl(url);
  }
}
