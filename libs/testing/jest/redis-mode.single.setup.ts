// Suites of the other projects run on one Redis, whatever project ran before in this process.
delete process.env.TEST_REDIS_CLUSTER_NODES;
delete process.env.TEST_REDIS_SENTINELS;
