import { Catch, HttpStatus, Logger, type ArgumentsHost } from '@nestjs/common';
import { isRedisUnavailableError, REDIS_UNAVAILABLE_RETRY_AFTER_SECONDS } from '@app/redis';
import type { FastifyReply } from 'fastify';
import { ClientErrorFilter } from './client-error.filter';

/** Warnings about one outage: the first at once, then at most one per this many ms. */
const WARN_EVERY_MS = 10_000;

/** The error itself or one of its causes (a wrapper that kept the Redis error as `cause`). */
function redisUnavailableCause(err: unknown): Error | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth += 1) {
    if (isRedisUnavailableError(current)) return current;
    current = current.cause;
  }
  return undefined;
}

/**
 * The API's catch-all filter: Redis refusing writes (OOM at maxmemory, READONLY after a failover)
 * or unreachable (connection lost, REDIS_COMMAND_TIMEOUT_MS passed) is not a bug of the request:
 * 503 + Retry-After in our error shape, whether it came from a handler, a guard (the submit rate
 * limiter counts in Redis), a pipe or an interceptor. Redis's own words stay in the log, never in
 * the answer. Everything else is ClientErrorFilter's.
 */
@Catch()
export class RedisUnavailableFilter extends ClientErrorFilter {
  private readonly logger = new Logger(RedisUnavailableFilter.name);
  private lastWarnAt = 0;
  private unwarned = 0;

  override catch(err: unknown, host: ArgumentsHost): void {
    const redisErr = redisUnavailableCause(err);
    if (!redisErr) {
      super.catch(err, host);
      return;
    }
    this.warn(redisErr);
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    void reply
      .status(HttpStatus.SERVICE_UNAVAILABLE)
      .header('Retry-After', String(REDIS_UNAVAILABLE_RETRY_AFTER_SECONDS))
      .send({
        statusCode: HttpStatus.SERVICE_UNAVAILABLE,
        error: 'Service Unavailable',
        message: 'Storage is unavailable; retry later',
      });
  }

  private warn(err: Error): void {
    const now = Date.now();
    if (now - this.lastWarnAt < WARN_EVERY_MS) {
      this.unwarned += 1;
      return;
    }
    const more = this.unwarned > 0 ? ` (and ${this.unwarned} more since the last warning)` : '';
    this.logger.warn(`answered 503: Redis is unavailable: ${err.message}${more}`);
    this.lastWarnAt = now;
    this.unwarned = 0;
  }
}
