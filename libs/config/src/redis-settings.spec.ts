import { inspect } from 'node:util';
import { AppConfig, ConfigError } from './app-config';
import { describeRedis, parseHostPortList } from './redis-settings';

const base = { API_KEYS: 'k1' };
const config = (env: Record<string, string>) => AppConfig.fromEnv({ ...base, ...env });
/** The ConfigError `env` raises (fails the spec when there is none). */
const failure = (env: Record<string, string>): ConfigError => {
  try {
    config(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
};

describe('Redis connection settings', () => {
  describe('single (REDIS_URL)', () => {
    it('takes host, port, database, TLS and credentials from the URL', () => {
      expect(config({}).redis).toEqual({
        mode: 'single',
        host: '127.0.0.1',
        port: 6379,
        db: 0,
        tls: false,
        prefix: 'ams',
        commandTimeoutMs: 5000,
      });
      const c = config({ REDIS_URL: 'rediss://app:p%40ss@redis.example.com:6380/2' });
      expect(c.redis).toMatchObject({
        mode: 'single',
        host: 'redis.example.com',
        port: 6380,
        db: 2,
        tls: true,
        username: 'app',
        password: 'p@ss',
      });
      expect(config({ REDIS_URL: 'redis://[::1]:7000' }).redis).toMatchObject({
        host: '::1',
        port: 7000,
      });
    });

    it('REDIS_USERNAME and REDIS_PASSWORD win over the URL, or complete it', () => {
      expect(
        config({
          REDIS_URL: 'redis://old:old-pass@h:6379',
          REDIS_USERNAME: 'new',
          REDIS_PASSWORD: 'new-pass',
        }).redis,
      ).toMatchObject({ username: 'new', password: 'new-pass' });
      expect(config({ REDIS_URL: 'redis://h:6379', REDIS_PASSWORD: 'only' }).redis).toMatchObject({
        password: 'only',
      });
      expect(config({ REDIS_URL: 'redis://h:6379' }).redis).not.toHaveProperty('password');
    });

    it('refuses REDIS_TLS=true with a redis:// URL (TLS there is rediss://), and a path that is no db', () => {
      expect(failure({ REDIS_TLS: 'true' }).message).toMatch(
        /REDIS_TLS=true applies to REDIS_CLUSTER_NODES and REDIS_SENTINELS; for one server use a rediss:\/\/ REDIS_URL/,
      );
      expect(config({ REDIS_URL: 'rediss://h:6379', REDIS_TLS: 'true' }).redis).toMatchObject({
        tls: true,
      });
      expect(failure({ REDIS_URL: 'redis://h:6379/cache' }).message).toMatch(
        /REDIS_URL must name a database number/,
      );
    });
  });

  describe('cluster (REDIS_CLUSTER_NODES)', () => {
    it('parses the seeds, with TLS and credentials for every node', () => {
      const c = config({
        REDIS_CLUSTER_NODES: ' 10.0.0.1:7000, redis-1.svc:7001,[fd00::1]:7002,',
        REDIS_USERNAME: 'app',
        REDIS_PASSWORD: 'secret',
        REDIS_TLS: 'true',
      });
      expect(c.redis).toMatchObject({
        mode: 'cluster',
        nodes: [
          { host: '10.0.0.1', port: 7000 },
          { host: 'redis-1.svc', port: 7001 },
          { host: 'fd00::1', port: 7002 },
        ],
        tls: true,
        username: 'app',
        password: 'secret',
        prefix: 'ams',
      });
      // The single-mode URL is not this mode's: its credentials are not taken.
      const ignored = config({
        REDIS_URL: 'redis://u:url-pass@h:6379',
        REDIS_CLUSTER_NODES: 'a:1',
      });
      expect(ignored.redis).not.toHaveProperty('password');
      expect(ignored.redis).not.toHaveProperty('username');
    });

    it.each([
      ['10.0.0.1', '"10.0.0.1" is not host:port'],
      ['a:7000,b', '"b" is not host:port'],
      ['a:0', '"a:0" is not host:port'],
      ['a:70000', '"a:70000" is not host:port'],
      ['fd00::1:7000', '"fd00::1:7000" is not host:port'],
      ['redis://a:7000', '"redis://a:7000" is not host:port'],
      [' , ', 'must be a comma-separated list of host:port'],
    ])('stops on a malformed list %p, naming the variable and the entry', (nodes, what) => {
      const err = failure({ REDIS_CLUSTER_NODES: nodes });
      expect(err.message).toContain(
        'REDIS_CLUSTER_NODES must be a comma-separated list of host:port',
      );
      expect(err.message).toContain(what);
    });

    it('never shows credentials written into an entry', () => {
      const err = failure({ REDIS_CLUSTER_NODES: 'a:7000,admin:hunter2@b:7001' });
      expect(err.message).toContain('"…@b:7001" is not host:port');
      expect(err.message).not.toContain('hunter2');
    });
  });

  describe('sentinel (REDIS_SENTINELS + REDIS_SENTINEL_NAME)', () => {
    it('parses the sentinels, the name and both passwords', () => {
      const c = config({
        REDIS_SENTINELS: 's1:26379,s2:26379',
        REDIS_SENTINEL_NAME: 'mymaster',
        REDIS_PASSWORD: 'data-pass',
        REDIS_SENTINEL_PASSWORD: 'sentinel-pass',
      });
      expect(c.redis).toMatchObject({
        mode: 'sentinel',
        sentinels: [
          { host: 's1', port: 26379 },
          { host: 's2', port: 26379 },
        ],
        name: 'mymaster',
        tls: false,
        password: 'data-pass',
        sentinelPassword: 'sentinel-pass',
      });
    });

    it('needs the name, and refuses sentinel settings without sentinels', () => {
      expect(failure({ REDIS_SENTINELS: 's1:26379' }).message).toMatch(
        /REDIS_SENTINEL_NAME is required with REDIS_SENTINELS/,
      );
      expect(failure({ REDIS_SENTINEL_NAME: 'mymaster' }).message).toMatch(
        /REDIS_SENTINEL_NAME is set but REDIS_SENTINELS is not/,
      );
      expect(failure({ REDIS_SENTINEL_PASSWORD: 'x' }).message).toMatch(
        /REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not/,
      );
      expect(failure({ REDIS_SENTINELS: 's1:26379:1', REDIS_SENTINEL_NAME: 'm' }).message).toMatch(
        /REDIS_SENTINELS must be a comma-separated list of host:port .*"s1:26379:1" is not host:port/,
      );
    });
  });

  it('stops when both cluster nodes and sentinels are set, naming both', () => {
    const err = failure({
      REDIS_CLUSTER_NODES: 'a:7000',
      REDIS_SENTINELS: 's:26379',
      REDIS_SENTINEL_NAME: 'm',
    });
    expect(err.message).toMatch(
      /REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: set one \(cluster or sentinel mode\)/,
    );
  });

  it('keeps passwords out of JSON, inspection, spreads, descriptions and error messages', () => {
    const secrets = ['url-secret', 'data-secret', 'sentinel-secret'];
    const configs = [
      config({ REDIS_URL: 'redis://:url-secret@h:6379' }),
      config({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_PASSWORD: 'data-secret' }),
      config({
        REDIS_SENTINELS: 's:26379',
        REDIS_SENTINEL_NAME: 'm',
        REDIS_PASSWORD: 'data-secret',
        REDIS_SENTINEL_PASSWORD: 'sentinel-secret',
      }),
    ];
    for (const c of configs) {
      const shown = [
        JSON.stringify(c),
        inspect(c, { depth: 10 }),
        JSON.stringify({ ...c.redis }),
        describeRedis(c.redis),
      ].join('\n');
      for (const secret of secrets) expect(shown).not.toContain(secret);
    }
    expect(configs[2].redis).toMatchObject({ sentinelPassword: 'sentinel-secret' });
    const invalid: Array<Record<string, string>> = [
      { REDIS_URL: 'http://:url-secret@h', REDIS_PASSWORD: 'data-secret' },
      { REDIS_TLS: 'true', REDIS_PASSWORD: 'data-secret' },
      { REDIS_CLUSTER_NODES: 'x', REDIS_PASSWORD: 'data-secret' },
      { REDIS_SENTINELS: 's:1', REDIS_SENTINEL_PASSWORD: 'sentinel-secret' },
    ];
    for (const env of invalid) {
      const message = failure(env).message;
      for (const secret of secrets) expect(message).not.toContain(secret);
    }
  });

  it('describes each mode for logs', () => {
    expect(describeRedis(config({ REDIS_URL: 'rediss://u:p@h:6380/1' }).redis)).toBe(
      'single rediss://h:6380/1',
    );
    expect(describeRedis(config({ REDIS_CLUSTER_NODES: 'a:1,[::1]:2' }).redis)).toBe(
      'cluster (seeds a:1,[::1]:2)',
    );
    expect(
      describeRedis(
        config({ REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm', REDIS_TLS: 'true' }).redis,
      ),
    ).toBe('sentinel "m" (sentinels s:26379, TLS)');
  });

  it('parseHostPortList returns the addresses or the first bad entry', () => {
    expect(parseHostPortList('a:1, b_c.d:65535')).toEqual({
      nodes: [
        { host: 'a', port: 1 },
        { host: 'b_c.d', port: 65535 },
      ],
    });
    expect(parseHostPortList('a:1,:2,c:3')).toEqual({ bad: ':2', reason: 'is not host:port' });
  });
});
