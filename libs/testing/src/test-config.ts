import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AppConfig } from '@app/config';
import { closeRedisClient, createRedisClient } from '@app/redis';
import { Cluster, type Redis } from 'ioredis';

export const TEST_API_KEY = 'test-key-0123456789';

/** A port the OS just handed out and released. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Which Redis the suites talk to: the cluster or sentinel set the jest projects `e2e-cluster` /
 * `e2e-sentinel` started (test/redis-mode.setup.ts puts their seeds in TEST_REDIS_CLUSTER_NODES
 * or TEST_REDIS_SENTINELS), else REDIS_URL or this machine's Redis. A spec that starts a private
 * redis-server of its own passes REDIS_URL and keeps it.
 */
function testRedisMode(): Record<string, string> {
  if (process.env.TEST_REDIS_CLUSTER_NODES) {
    return { REDIS_CLUSTER_NODES: process.env.TEST_REDIS_CLUSTER_NODES };
  }
  if (process.env.TEST_REDIS_SENTINELS) {
    return {
      REDIS_SENTINELS: process.env.TEST_REDIS_SENTINELS,
      REDIS_SENTINEL_NAME: process.env.TEST_REDIS_SENTINEL_NAME ?? 'mymaster',
    };
  }
  return { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
}

/**
 * Config for a test: its own Redis key prefix and storage folder, fast retries, the real Redis
 * of this machine (REDIS_URL if set).
 */
export function testConfig(env: Record<string, string> = {}): AppConfig {
  return AppConfig.fromEnv({
    NODE_ENV: 'test',
    ...(env.REDIS_URL ? {} : testRedisMode()),
    REDIS_PREFIX: `test-${randomBytes(4).toString('hex')}`,
    API_KEYS: TEST_API_KEY,
    API_HOST: '127.0.0.1',
    STORAGE_LOCAL_DIR: mkdtempSync(path.join(os.tmpdir(), 'test-media-')),
    RETRY_DELAY_SCALE: '0.001',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    WORKER_HEARTBEAT_INTERVAL: '1',
    WORKER_HEALTH_PORT: '0',
    // Every peer of a test (file servers, Payload, S3, webhook receivers) is on loopback.
    ALLOW_PRIVATE_URLS: 'true',
    WEBHOOK_RETRY_SCALE: '0.001',
    // Models load on first use: a spec that boots a worker does not pay for every model of its
    // queues. The model specs set MODEL_PRELOAD themselves.
    MODEL_PRELOAD: 'none',
    ...env,
  });
}

/** Deletes every key under the config's prefix: on a cluster, on every master. */
export async function cleanRedis(config: AppConfig): Promise<void> {
  const redis = createRedisClient(config, 'test-clean', { commandTimeoutMs: 10_000 });
  try {
    // A cluster's node list is known once it is ready.
    await redis.ping();
    const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(
          cursor,
          'MATCH',
          `${config.redis.prefix}:*`,
          'COUNT',
          1000,
        );
        cursor = next;
        // One key per DEL: a cluster node refuses keys of several slots in one command.
        const pipeline = node.pipeline();
        for (const key of keys) pipeline.del(key);
        if (keys.length > 0) await pipeline.exec();
      } while (cursor !== '0');
    }
  } finally {
    await closeRedisClient(redis);
  }
}

/**
 * Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`.
 * `explain` is asked at that moment for what the failure message should add (a process's
 * output, its exit code): a timeout that only says "timed out" sends the reader hunting.
 */
export async function waitFor<T>(
  check: () => Promise<T | undefined>,
  {
    timeoutMs = 30_000,
    intervalMs = 50,
    what = 'condition',
    explain,
  }: { timeoutMs?: number; intervalMs?: number; what?: string; explain?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const more = explain?.();
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${more ? `\n${more}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
