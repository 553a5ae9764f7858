import { HttpException, HttpStatus, Injectable, type ExecutionContext } from '@nestjs/common';
import { ThrottlerGuard, type ThrottlerLimitDetail } from '@nestjs/throttler';
import type { ApiRequest } from '../auth/api-key.guard';

/**
 * RATE_LIMIT_SUBMIT per API key and window on the route it decorates (POST /tasks/submit). Runs
 * after the global ApiKeyGuard, so the bucket is the key's digest (`principal.keyId`), never the
 * key, and never the client's IP: one platform backend sends all the traffic of a key.
 */
@Injectable()
export class SubmitThrottlerGuard extends ThrottlerGuard {
  protected override getTracker(req: Record<string, unknown>): Promise<string> {
    const principal = (req as unknown as ApiRequest).principal;
    if (!principal) throw new Error('SubmitThrottlerGuard runs after ApiKeyGuard');
    return Promise.resolve(principal.keyId);
  }

  protected override generateKey(_context: ExecutionContext, tracker: string): string {
    return `submit:${tracker}`;
  }

  protected override throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    // The guard has set Retry-After already; the body takes our error shape and names the limit.
    throw new HttpException(
      {
        statusCode: HttpStatus.TOO_MANY_REQUESTS,
        error: 'Too Many Requests',
        message:
          `Rate limit reached: ${detail.limit} submits per ${detail.ttl / 1000} s per API key ` +
          `(RATE_LIMIT_SUBMIT); retry after ${detail.timeToBlockExpire} s`,
      },
      HttpStatus.TOO_MANY_REQUESTS,
    );
  }
}
