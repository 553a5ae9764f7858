import { inspect } from 'node:util';
import { Logger } from '@nestjs/common';
import { cleanRedis, PrivateRedisServer, testConfig } from '@app/testing';
import { AppConfig } from '@app/config';
import { createRedisClient, type RedisClient } from '../src/redis-client.factory';
import { SigningKeys } from '../src/signing-keys';

const WEBHOOK_SECRET = 'whsec_' + Buffer.from('w'.repeat(32)).toString('base64');

describe('SigningKeys', () => {
  const configs: AppConfig[] = [];
  let redis: RedisClient;
  const config = (env: Record<string, string> = {}) => {
    const c = testConfig({ API_KEYS: 'key-b,key-a', ...env });
    // The private server's keys go with it.
    if (!env.REDIS_URL) configs.push(c);
    return c;
  };

  beforeAll(() => {
    redis = createRedisClient(testConfig(), 'spec', { commandTimeoutMs: 10_000 });
  });
  afterAll(async () => {
    for (const c of configs) await cleanRedis(c);
    await redis.quit();
  });

  it('replicas sharing a prefix derive the same keys; one salt is stored, once', async () => {
    const a = config();
    const b = testConfig({ API_KEYS: 'key-a,key-b', REDIS_PREFIX: a.redis.prefix });
    const [ka, kb] = await Promise.all([
      SigningKeys.resolve(a, redis),
      SigningKeys.resolve(b, redis),
    ]);
    expect(ka.mediaUrlSecret).toBe(kb.mediaUrlSecret);
    expect(ka.webhookSecret).toBe(kb.webhookSecret);
    expect(ka.webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const salt = await redis.get(`${a.redis.prefix}:secrets:signing-salt`);
    expect(salt).toMatch(/^[0-9a-f]{64}$/);
    // Again later (a restart): the same salt, the same keys.
    expect((await SigningKeys.resolve(a, redis)).mediaUrlSecret).toBe(ka.mediaUrlSecret);
    expect(await redis.get(`${a.redis.prefix}:secrets:signing-salt`)).toBe(salt);
  });

  it('other deployments (prefixes) with the same API keys derive other keys', async () => {
    const [ka, kb] = await Promise.all([
      SigningKeys.resolve(config(), redis),
      SigningKeys.resolve(config(), redis),
    ]);
    expect(ka.mediaUrlSecret).not.toBe(kb.mediaUrlSecret);
    expect(ka.webhookSecret).not.toBe(kb.webhookSecret);
  });

  it('derives nothing from the API keys alone: without the salt the key is not the old digest', () => {
    const c = config();
    const one = SigningKeys.withSalt(c, '11'.repeat(32));
    const two = SigningKeys.withSalt(c, '22'.repeat(32));
    expect(one.mediaUrlSecret).not.toBe(two.mediaUrlSecret);
    expect(one.mediaUrlSecret).not.toBe(one.webhookSecret);
    const rotated = SigningKeys.withSalt(config({ API_KEYS: 'key-c' }), '11'.repeat(32));
    expect(rotated.mediaUrlSecret).not.toBe(one.mediaUrlSecret);
  });

  it('uses the configured secrets as they are, and needs no Redis for them', async () => {
    const c = config({ MEDIA_URL_SECRET: 'media-secret-of-ours', WEBHOOK_SECRET });
    const offline = { set: () => Promise.reject(new Error('no Redis')) } as unknown as RedisClient;
    const keys = await SigningKeys.resolve(c, offline);
    expect(keys.mediaUrlSecret).toBe('media-secret-of-ours');
    expect(keys.webhookSecret).toBe(WEBHOOK_SECRET);
    // Only one set: the other is derived.
    const half = await SigningKeys.resolve(config({ WEBHOOK_SECRET }), redis);
    expect(half.webhookSecret).toBe(WEBHOOK_SECRET);
    expect(half.mediaUrlSecret).toMatch(/^[0-9a-f]{64}$/);
  });

  it('never shows a key when logged or serialized', async () => {
    const keys = await SigningKeys.resolve(config(), redis);
    expect(inspect({ keys })).not.toContain(keys.mediaUrlSecret);
    expect(JSON.stringify({ keys })).not.toContain(keys.mediaUrlSecret);
    expect(JSON.stringify({ keys })).not.toContain(keys.webhookSecret);
  });

  describe('with Redis refusing writes or gone', () => {
    const server = new PrivateRedisServer({
      args: ['--maxmemory', '20mb', '--maxmemory-policy', 'noeviction'],
    });
    let client: RedisClient;
    beforeAll(async () => {
      Logger.overrideLogger(false);
      await server.start();
      client = createRedisClient(testConfig({ REDIS_URL: server.url }), 'spec', {
        commandTimeoutMs: 500,
      });
    });
    afterAll(async () => {
      Logger.overrideLogger(new Logger());
      client.disconnect();
      await server.stop();
    });

    it('reads a salt made earlier when Redis is out of memory', async () => {
      const c = config({ REDIS_URL: server.url });
      const before = await SigningKeys.resolve(c, client);
      await client.setrange('filler', 30 * 1024 * 1024, 'x');
      await expect(client.set('probe', '1')).rejects.toThrow(/OOM/);
      expect((await SigningKeys.resolve(c, client)).mediaUrlSecret).toBe(before.mediaUrlSecret);
      // A deployment with no salt yet cannot get one: a clear error, not a made-up key.
      await expect(SigningKeys.salt(config({ REDIS_URL: server.url }), client, 0)).rejects.toThrow(
        /Cannot derive the signing keys.*set MEDIA_URL_SECRET and WEBHOOK_SECRET/,
      );
      await client.del('filler');
    });
  });
});
