// Suites of the `e2e-cluster` project run on the cluster its global setup started.
process.env.TEST_REDIS_CLUSTER_NODES = process.env.TEST_CLUSTER_SEEDS;
