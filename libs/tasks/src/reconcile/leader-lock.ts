import type { Logger } from '@nestjs/common';
import { isRedisUnavailableError, type RedisClient } from '@app/redis';

/** Takes the leader lock, or extends it when this worker holds it. 1 when held. */
const LEAD = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
`;

/**
 * One worker at a time runs a background job (the reconciler, the retention sweeper): whoever
 * holds `key` leads until it stops renewing it for `ttlMs`. True when `holder` leads now.
 */
export async function takeLead(
  redis: RedisClient,
  key: string,
  holder: string,
  ttlMs: number,
): Promise<boolean> {
  return (await redis.eval(LEAD, 1, key, holder, String(ttlMs))) === 1;
}

/**
 * A background pass on a timer (the reconciler, the retention sweeper): never two at once, an
 * error logged unless Redis is merely unavailable (readiness reports that), and `stop()` waits
 * for the pass under way.
 */
export class PeriodicPass {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;

  constructor(
    private readonly logger: Logger,
    private readonly pass: () => Promise<unknown>,
  ) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.pass()
        .catch((err: Error) => {
          if (!isRedisUnavailableError(err)) this.logger.warn(`pass failed: ${err.message}`);
        })
        .finally(() => (this.running = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
