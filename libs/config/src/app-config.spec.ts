import { AppConfig, ConfigError } from './app-config';

describe('AppConfig.fromEnv', () => {
  const base = { API_KEYS: 'k1' };

  it('applies defaults from the seed', () => {
    const c = AppConfig.fromEnv(base);
    expect(c.api).toMatchObject({ host: '0.0.0.0', port: 8001, keys: ['k1'] });
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
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

  it('requires API_KEYS', () => {
    expect(() => AppConfig.fromEnv({})).toThrow(/API_KEYS/);
    expect(() => AppConfig.fromEnv({ API_KEYS: ' , ' })).toThrow(/API_KEYS/);
  });

  it('derives the same media signing key on every replica with the same keys', () => {
    const a = AppConfig.fromEnv({ API_KEYS: 'x,y' });
    const b = AppConfig.fromEnv({ API_KEYS: 'y,x' });
    expect(a.storage.mediaUrlSecret).toBe(b.storage.mediaUrlSecret);
    expect(a.storage.mediaUrlSecret).not.toContain('x');
  });
});
