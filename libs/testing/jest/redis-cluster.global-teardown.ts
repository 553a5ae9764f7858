import type { TestRedisCluster } from '../src/redis-cluster';

export default async function teardown(): Promise<void> {
  await (globalThis as { __redisCluster?: TestRedisCluster }).__redisCluster?.stop();
}
