// Loaded by jest outside the module map: resolve @app/* through tsconfig paths.
import 'tsconfig-paths/register';
import { TestRedisCluster } from '../src/redis-cluster';

/**
 * The `e2e-cluster` project's Redis: one three-master cluster shared by its suites (each keeps
 * its own key prefix). Its seeds go to the suites through TEST_CLUSTER_SEEDS; the project's setup
 * file turns them into the mode testConfig() picks.
 */
export default async function setup(): Promise<void> {
  const cluster = await new TestRedisCluster().start();
  (globalThis as { __redisCluster?: TestRedisCluster }).__redisCluster = cluster;
  process.env.TEST_CLUSTER_SEEDS = cluster.nodes;
}
