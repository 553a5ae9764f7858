import { AppConfig, ConfigError } from './app-config';

describe('AppConfig.fromEnv', () => {
  const base = { API_KEYS: 'k1' };

  it('applies defaults from the seed', () => {
    const c = AppConfig.fromEnv(base);
    expect(c.api).toMatchObject({ host: '0.0.0.0', port: 8001, keys: ['k1'] });
    expect(c.redis).toMatchObject({ mode: 'single', host: '127.0.0.1', port: 6379, db: 0 });
    expect(c.tasks).toEqual({
      maxRetryAttempts: 5,
      retryLimits: { network: 3, gpu_memory: 2, rate_limit: 5, default: 1 },
      reconcile: { intervalMs: 15_000, graceMs: 60_000, batch: 500 },
      unknownTypeTimeoutSeconds: 900,
      retryDelayScale: 1,
      timeoutSeconds: 3600,
      queueMaxSize: 1000,
    });
    expect(c.worker.queues).toEqual(['gpu_heavy', 'gpu_medium', 'cpu_intensive']);
    expect(c.gpu.backend).toBe('auto');
  });

  it('takes RETRY_LIMITS over the seed values and refuses a malformed one', () => {
    const base = { API_KEYS: 'k1' };
    expect(
      AppConfig.fromEnv({ ...base, RETRY_LIMITS: 'network:1, default:0' }).tasks.retryLimits,
    ).toEqual({
      network: 1,
      gpu_memory: 2,
      rate_limit: 5,
      default: 0,
    });
    expect(() => AppConfig.fromEnv({ ...base, RETRY_LIMITS: 'network=1' })).toThrow(/RETRY_LIMITS/);
  });

  it('parses lists and numbers, and merges the seed API_KEY', () => {
    const c = AppConfig.fromEnv({
      API_KEYS: ' a , b,',
      API_KEY: 'c',
      API_PORT: '9000',
      WORKER_QUEUES: 'gpu_medium',
    });
    expect(c.api.keys).toEqual(['a', 'b', 'c']);
    expect(c.api.port).toBe(9000);
    expect(c.worker.queues).toEqual(['gpu_medium']);
  });

  it.each([
    [{ API_PORT: '70000' }, /API_PORT must not be greater than 65535/],
    [{ API_PORT: 'abc' }, /API_PORT/],
    [{ REDIS_URL: 'http://x' }, /REDIS_URL/],
    [{ WORKER_QUEUES: 'gpu_heavy,gpu_nope' }, /WORKER_QUEUES must be/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
    [{ MAX_RETRY_ATTEMPTS: '-1' }, /MAX_RETRY_ATTEMPTS/],
    [{ TFJS_BACKEND: 'cuda' }, /TFJS_BACKEND/],
  ])('stops on a bad value and names the variable: %o', (env, message) => {
    expect(() => AppConfig.fromEnv({ ...base, ...env })).toThrow(ConfigError);
    expect(() => AppConfig.fromEnv({ ...base, ...env })).toThrow(message);
  });

  it('takes SAFETY_BLOCK_THRESHOLD from 0 to 1, unset meaning never block', () => {
    expect(AppConfig.fromEnv(base).safety).toEqual({ blockThreshold: null });
    expect(AppConfig.fromEnv({ ...base, SAFETY_BLOCK_THRESHOLD: '' }).safety.blockThreshold).toBe(
      null,
    );
    expect(
      AppConfig.fromEnv({ ...base, SAFETY_BLOCK_THRESHOLD: '0.85' }).safety.blockThreshold,
    ).toBe(0.85);
    expect(AppConfig.fromEnv({ ...base, SAFETY_BLOCK_THRESHOLD: '0' }).safety.blockThreshold).toBe(
      0,
    );
    for (const bad of ['2', '-0.1', 'high', 'NaN']) {
      expect(() => AppConfig.fromEnv({ ...base, SAFETY_BLOCK_THRESHOLD: bad })).toThrow(
        /SAFETY_BLOCK_THRESHOLD must be a number from 0 to 1 \(unset: never block\)/,
      );
    }
  });

  it('keeps tasks and media forever unless a retention is set, and never media past its record', () => {
    expect(AppConfig.fromEnv(base).retention).toEqual({
      taskDays: null,
      mediaDays: null,
      intervalMs: 60_000,
      batch: 500,
    });
    expect(
      AppConfig.fromEnv({ ...base, TASK_RETENTION_DAYS: '0', MEDIA_RETENTION_DAYS: '' }).retention,
    ).toMatchObject({ taskDays: null, mediaDays: null });
    expect(
      AppConfig.fromEnv({ ...base, TASK_RETENTION_DAYS: '90', MEDIA_RETENTION_DAYS: '30' })
        .retention,
    ).toMatchObject({ taskDays: 90, mediaDays: 30 });
    expect(AppConfig.fromEnv({ ...base, MEDIA_RETENTION_DAYS: '7' }).retention).toMatchObject({
      taskDays: null,
      mediaDays: 7,
    });
    for (const bad of ['-1', '1.5', 'soon', '40000']) {
      expect(() => AppConfig.fromEnv({ ...base, TASK_RETENTION_DAYS: bad })).toThrow(
        /TASK_RETENTION_DAYS must be/,
      );
      expect(() => AppConfig.fromEnv({ ...base, MEDIA_RETENTION_DAYS: bad })).toThrow(
        /MEDIA_RETENTION_DAYS must be/,
      );
    }
    expect(() =>
      AppConfig.fromEnv({ ...base, TASK_RETENTION_DAYS: '7', MEDIA_RETENTION_DAYS: '30' }),
    ).toThrow(/MEDIA_RETENTION_DAYS \(30\) must not exceed TASK_RETENTION_DAYS \(7\)/);
    expect(() => AppConfig.fromEnv({ ...base, RETENTION_BATCH: '0' })).toThrow(/RETENTION_BATCH/);
  });

  it('requires API_KEYS', () => {
    expect(() => AppConfig.fromEnv({})).toThrow(/API_KEYS/);
    expect(() => AppConfig.fromEnv({ API_KEYS: ' , ' })).toThrow(/API_KEYS/);
  });

  it('leaves unset signing secrets to SigningKeys (derived at boot), and prefixes whsec_', () => {
    const unset = AppConfig.fromEnv({ API_KEYS: 'x,y' });
    expect(unset.storage.mediaUrlSecret).toBeNull();
    expect(unset.webhooks).toMatchObject({ secret: null, derivedSecret: true });
    const set = AppConfig.fromEnv({
      API_KEYS: 'x',
      MEDIA_URL_SECRET: 'm'.repeat(32),
      WEBHOOK_SECRET: 'QUJDREVGR0hJSktMTU5PUA==',
    });
    expect(set.storage.mediaUrlSecret).toBe('m'.repeat(32));
    expect(set.webhooks).toMatchObject({
      secret: 'whsec_QUJDREVGR0hJSktMTU5PUA==',
      derivedSecret: false,
    });
  });

  it('in production, requires MEDIA_URL_SECRET and WEBHOOK_SECRET, naming both', () => {
    const production = { API_KEYS: 'x', NODE_ENV: 'production' };
    const err = (() => {
      try {
        AppConfig.fromEnv(production);
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/- MEDIA_URL_SECRET is required with NODE_ENV=production/);
    expect(err.message).toMatch(/- WEBHOOK_SECRET is required with NODE_ENV=production/);
    expect(() =>
      AppConfig.fromEnv({ ...production, WEBHOOK_SECRET: 'QUJDREVGR0hJSktMTU5PUA==' }),
    ).toThrow(/MEDIA_URL_SECRET is required/);
    expect(
      AppConfig.fromEnv({
        ...production,
        MEDIA_URL_SECRET: 'm'.repeat(32),
        WEBHOOK_SECRET: 'QUJDREVGR0hJSktMTU5PUA==',
      }).nodeEnv,
    ).toBe('production');
  });
});
