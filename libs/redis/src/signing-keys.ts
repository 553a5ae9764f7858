import { createHmac, randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { Logger } from '@nestjs/common';
import type { AppConfig } from '@app/config';
import type { RedisClient } from './redis-client.factory';
import { isRedisUnavailableError } from './redis-errors';
import { redisKey } from './redis-keys';

/** How long a boot waits for Redis to hand out the salt before it gives up. */
const SALT_WAIT_MS = 30_000;

/**
 * The keys that sign local media URLs and webhooks. Configured (MEDIA_URL_SECRET, WEBHOOK_SECRET;
 * required in production), or derived as HMAC-SHA256(salt, label + sorted API keys) with a salt of
 * 32 random bytes that the first process of a deployment stores in Redis
 * (`<REDIS_PREFIX>:secrets:signing-salt`, SET NX) and every other one reads: replicas sharing
 * Redis agree, other deployments differ, and a signed URL seen in a browser gives nothing to test
 * guesses of an API key against offline. Never logged: inspection and JSON show no key.
 */
export class SigningKeys {
  private static readonly logger = new Logger(SigningKeys.name);

  private constructor(
    /** HMAC key of local media URLs. */
    readonly mediaUrlSecret: string,
    /** Standard Webhooks secret, `whsec_<base64>`. */
    readonly webhookSecret: string,
  ) {}

  /** The configured keys, or keys derived from this deployment's salt in Redis. */
  static async resolve(config: AppConfig, redis: RedisClient): Promise<SigningKeys> {
    const media = config.storage.mediaUrlSecret;
    const webhook = config.webhooks.secret;
    if (media !== null && webhook !== null) return new SigningKeys(media, webhook);
    return SigningKeys.withSalt(config, await SigningKeys.salt(config, redis));
  }

  /** The configured secrets, and for those unset keys derived from `salt` (64 hex digits). */
  static withSalt(config: AppConfig, salt: string): SigningKeys {
    const keys = [...config.api.keys].sort().join(',');
    const mac = (label: string) =>
      createHmac('sha256', Buffer.from(salt, 'hex')).update(`${label}:${keys}`);
    return new SigningKeys(
      config.storage.mediaUrlSecret ?? mac('media-url').digest('hex'),
      config.webhooks.secret ?? `whsec_${mac('webhook').digest('base64')}`,
    );
  }

  /**
   * The deployment's salt: made once (SET NX), read by everyone. While Redis is unavailable it
   * tries again each second for `waitMs`, then fails the boot naming the way out.
   */
  static async salt(config: AppConfig, redis: RedisClient, waitMs = SALT_WAIT_MS): Promise<string> {
    const key = redisKey(config.redis.prefix, 'secrets', 'signing-salt');
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        return await SigningKeys.saltOnce(redis, key);
      } catch (err) {
        if (!isRedisUnavailableError(err) || Date.now() >= deadline) {
          throw new Error(
            `Cannot derive the signing keys: Redis did not hand out the signing salt (${(err as Error).message}); ` +
              'set MEDIA_URL_SECRET and WEBHOOK_SECRET, or make Redis reachable',
            { cause: err },
          );
        }
        SigningKeys.logger.warn(
          `waiting for Redis to read the signing salt: ${(err as Error).message}`,
        );
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private static async saltOnce(redis: RedisClient, key: string): Promise<string> {
    try {
      await redis.set(key, randomBytes(32).toString('hex'), 'NX');
    } catch (err) {
      // A Redis refusing writes (OOM) still reads: a salt made earlier is enough.
      if (!isRedisUnavailableError(err)) throw err;
      const existing = await redis.get(key);
      if (existing === null) throw err;
      return SigningKeys.checked(existing, key);
    }
    const salt = await redis.get(key);
    if (salt === null) throw new Error(`${key} vanished right after it was set`);
    return SigningKeys.checked(salt, key);
  }

  private static checked(salt: string, key: string): string {
    if (!/^[0-9a-f]{64}$/.test(salt)) throw new Error(`${key} does not hold 32 bytes of hex`);
    return salt;
  }

  toJSON(): Record<string, string> {
    return { mediaUrlSecret: '[redacted]', webhookSecret: '[redacted]' };
  }

  [inspect.custom](): string {
    return 'SigningKeys { [redacted] }';
  }
}
