import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { getQueueToken } from '@nestjs/bullmq';
import { Test } from '@nestjs/testing';
import { Job, Queue, Worker } from 'bullmq';
import { Cluster, Redis } from 'ioredis';
import { ConfigModule, type AppConfig, type RedisMode } from '@app/config';
import { CancelBus, QueueName, TasksModule } from '@app/tasks';
import { cleanRedis, TestRedisCluster, TestRedisSentinel, testConfig, waitFor } from '@app/testing';
import {
  closeRedisClient,
  createRedisClient,
  REDIS_CLIENT,
  RedisClientFactory,
  type RedisClient,
} from '../src/redis-client.factory';
import { redisKey } from '../src/redis-keys';
import { RedisModule } from '../src/redis.module';

/** Returns the previous value and sets a new one: one key, so one slot on a cluster. */
const SWAP = `local old = redis.call('GET', KEYS[1]); redis.call('SET', KEYS[1], ARGV[1]); return old`;
type SwapRedis = RedisClient & { specSwap(key: string, value: string): Promise<string | null> };

const hex = () => randomBytes(4).toString('hex');

/** Rejects when `promise` has not settled within `ms` (a bound for a loaded machine). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    }),
  ]);
}

interface ModeSetup {
  config: AppConfig;
  /** BullMQ's prefix: hash-tagged on a cluster (every key of a queue in one slot). */
  bullPrefix: string;
}

/**
 * What every mode must do with connections from the factory: commands and a defineCommand
 * script, pub/sub through a subscriber connection, a BullMQ job round trip, and the Nest modules
 * (the shared command connection, BullModule's queues, the cancel subscriber) closing everything
 * they opened.
 */
function connectionSpecs(mode: RedisMode, setup: () => ModeSetup): void {
  let connections: RedisClientFactory;
  beforeAll(() => {
    connections = new RedisClientFactory(setup().config);
  });
  afterAll(async () => {
    await connections.close();
  });

  it(`${mode}: commands, a defineCommand script and pub/sub through a subscriber`, async () => {
    const { config } = setup();
    const redis = connections.create('spec', { commandTimeoutMs: 10_000 });
    expect(redis).toBeInstanceOf(mode === 'cluster' ? Cluster : Redis);
    const key = redisKey(config.redis.prefix, 'modes', 'swap');
    expect(await redis.set(key, 'one')).toBe('OK');
    expect(await redis.get(key)).toBe('one');
    redis.defineCommand('specSwap', { numberOfKeys: 1, lua: SWAP });
    expect(await (redis as SwapRedis).specSwap(key, 'two')).toBe('one');
    expect(await redis.get(key)).toBe('two');
    // Keys of many slots (every master of a cluster), the script on each.
    const keys = Array.from({ length: 40 }, (_, i) => redisKey(config.redis.prefix, 'modes', i));
    await Promise.all(keys.map((k) => (redis as SwapRedis).specSwap(k, k)));
    expect(await Promise.all(keys.map((k) => redis.get(k)))).toEqual(keys);

    const subscriber = connections.create('spec-subscriber');
    const channel = redisKey(config.redis.prefix, 'events', 'spec');
    const received = new Promise<string>((resolve) =>
      subscriber.on('message', (ch: string, message: string) => {
        if (ch === channel) resolve(message);
      }),
    );
    await subscriber.subscribe(channel);
    expect(await redis.publish(channel, 'hello')).toBeGreaterThanOrEqual(0);
    expect(await within(received, 20_000, 'message')).toBe('hello');
  });

  it(`${mode}: a BullMQ Queue and Worker from bullConnection run a job round trip`, async () => {
    const { bullPrefix } = setup();
    const name = `modes_${hex()}`;
    const queue = new Queue(name, { connection: connections.bullConnection(), prefix: bullPrefix });
    const worker = new Worker(name, (job: Job<{ n: number }>) => Promise.resolve(job.data.n * 2), {
      connection: connections.bullConnection(),
      prefix: bullPrefix,
    });
    worker.on('error', () => undefined);
    try {
      await within(worker.waitUntilReady(), 30_000, 'worker ready');
      const job = await queue.add('double', { n: 21 });
      const done = await waitFor(
        async () => {
          const j = await Job.fromId(queue, job.id!);
          return j?.finishedOn ? j : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 100, what: `job ${job.id} to finish` },
      );
      expect(done.returnvalue).toBe(42);
      expect(await done.getState()).toBe('completed');
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  it(`${mode}: the Nest modules take their connections from the factory and close them all`, async () => {
    const { config } = setup();
    const module = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), RedisModule, TasksModule],
    }).compile();
    const app = await module.init();
    const shared = app.get<RedisClient>(REDIS_CLIENT);
    const queue = app.get<Queue>(getQueueToken(QueueName.GpuMedium));
    const cancels: string[] = [];
    let closed = false;
    try {
      expect(shared).toBeInstanceOf(mode === 'cluster' ? Cluster : Redis);
      expect(await shared.ping()).toBe('PONG');
      await within(queue.waitUntilReady(), 30_000, 'queue ready');
      // A cluster's queues share the factory's one Cluster; otherwise BullMQ's own connections.
      const connection = queue.opts.connection;
      if (mode === 'cluster') expect(connection).toBe(app.get(RedisClientFactory).bullConnection());
      else expect(connection).not.toBeInstanceOf(Redis);
      const bus = app.get(CancelBus);
      await bus.subscribe((taskId) => cancels.push(taskId));
      await bus.publish('task-1');
      await waitFor(async () => (cancels.length > 0 ? true : undefined), {
        timeoutMs: 20_000,
        what: 'the cancel broadcast',
      });
      expect(cancels).toEqual(['task-1']);
      await app.close();
      closed = true;
      expect(shared.status).toBe('end');
      if (connection instanceof Cluster) {
        await waitFor(async () => (connection.status === 'end' ? true : undefined), {
          timeoutMs: 10_000,
          what: "BullMQ's shared cluster connection to close",
        });
      }
    } finally {
      if (!closed) await app.close();
    }
  });
}

describe('Redis connection modes', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));

  describe('single: the machine’s Redis under a prefix of its own', () => {
    const setup: { current?: ModeSetup } = {};
    beforeAll(() => {
      const config = testConfig();
      setup.current = { config, bullPrefix: `${config.redis.prefix}:bull` };
    });
    connectionSpecs('single', () => setup.current!);
    afterAll(async () => {
      if (setup.current) await cleanRedis(setup.current.config);
    });
  });

  describe('cluster: three masters', () => {
    const cluster = new TestRedisCluster();
    const setup: { current?: ModeSetup } = {};
    beforeAll(async () => {
      await cluster.start();
      const config = testConfig({ REDIS_CLUSTER_NODES: cluster.nodes });
      // BullMQ's requirement on a cluster: a hash-tagged prefix.
      setup.current = { config, bullPrefix: `{${config.redis.prefix}}` };
    }, 180_000);
    connectionSpecs('cluster', () => setup.current!);
    // After the specs' own afterAll (jest runs them in order): connections close first.
    afterAll(() => cluster.stop());

    it('cluster: cleanRedis removes the prefix’s keys from every master', async () => {
      const { config } = setup.current!;
      const redis = createRedisClient(config, 'spec-clean', { commandTimeoutMs: 10_000 });
      try {
        if (!(redis instanceof Cluster)) throw new Error('expected a Cluster');
        const keys = Array.from({ length: 60 }, (_, i) => redisKey(config.redis.prefix, 'c', i));
        await Promise.all(keys.map((k) => redis.set(k, '1')));
        const onMasters = async () =>
          Promise.all(
            redis
              .nodes('master')
              .map(async (n) => (await n.keys(`${config.redis.prefix}:*`)).length),
          );
        const before = await onMasters();
        expect(before).toHaveLength(3);
        expect(before.every((n) => n > 0)).toBe(true);
        await cleanRedis(config);
        expect(await onMasters()).toEqual([0, 0, 0]);
      } finally {
        await closeRedisClient(redis);
      }
    });
  });

  describe('sentinel: a primary, a replica and a sentinel', () => {
    const sentinel = new TestRedisSentinel();
    const setup: { current?: ModeSetup } = {};
    beforeAll(async () => {
      await sentinel.start();
      const config = testConfig({
        REDIS_SENTINELS: sentinel.sentinels,
        REDIS_SENTINEL_NAME: sentinel.name,
      });
      setup.current = { config, bullPrefix: `${config.redis.prefix}:bull` };
    }, 180_000);
    connectionSpecs('sentinel', () => setup.current!);
    afterAll(() => sentinel.stop());

    it('sentinel: across a failover commands succeed, on the new primary, and nothing written before is lost', async () => {
      const { config, bullPrefix } = setup.current!;
      const prefix = config.redis.prefix;
      const connections = new RedisClientFactory(config);
      const name = `failover_${hex()}`;
      const queue = new Queue(name, {
        connection: connections.bullConnection(),
        prefix: bullPrefix,
      });
      const worker = new Worker(
        name,
        (job: Job<{ n: number }>) => Promise.resolve(job.data.n + 1),
        {
          connection: connections.bullConnection(),
          prefix: bullPrefix,
        },
      );
      worker.on('error', () => undefined);
      queue.on('error', () => undefined);
      // Bounded like the shared command connection, generously: a failover takes seconds.
      const redis = connections.create('spec-failover', { commandTimeoutMs: 30_000 });
      let direct: RedisClient | undefined;
      try {
        await within(worker.waitUntilReady(), 30_000, 'worker ready');
        const before = Array.from({ length: 50 }, (_, i) => redisKey(prefix, 'before', i));
        for (const k of before) await redis.set(k, k);
        const job = await queue.add('inc', { n: 1 });
        await waitFor(
          async () => ((await Job.fromId(queue, job.id!))?.finishedOn ? true : undefined),
          {
            timeoutMs: 60_000,
            what: 'the job before the failover',
          },
        );
        // The replica holds every write so far.
        expect(await redis.call('WAIT', '1', '10000')).toBe(1);

        const oldPrimary = await sentinel.primaryPort();
        let writing = true;
        const during: Array<Promise<unknown>> = [];
        const writer = (async () => {
          for (let i = 0; writing; i++) {
            const write = redis.set(redisKey(prefix, 'during', i), String(i));
            during.push(write);
            await write.catch(() => undefined);
          }
        })();
        const newPrimary = await sentinel.failover();
        expect(newPrimary).not.toBe(oldPrimary);
        writing = false;
        await writer;
        // Every command issued across the failover got its answer (sent again where needed).
        const outcomes = await Promise.allSettled(during);
        expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);

        // The connection follows the sentinel to the new primary.
        await waitFor(
          async () => {
            const info = String(await redis.info('server'));
            return new RegExp(`tcp_port:${newPrimary}\\b`).test(info) ? true : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 200, what: `the client to reach ${newPrimary}` },
        );
        const after = redisKey(prefix, 'after');
        expect(await redis.set(after, 'written')).toBe('OK');
        direct = createRedisClient(
          testConfig({ REDIS_URL: `redis://127.0.0.1:${newPrimary}` }),
          'spec-direct',
          { commandTimeoutMs: 10_000 },
        );
        expect(await direct.get(after)).toBe('written');
        expect(await Promise.all(before.map((k) => direct!.get(k)))).toEqual(before);

        // BullMQ's connections (the worker's blocking one too) followed as well.
        const later = await queue.add('inc', { n: 41 });
        const done = await waitFor(
          async () => {
            const j = await Job.fromId(queue, later.id!);
            return j?.finishedOn ? j : undefined;
          },
          { timeoutMs: 60_000, intervalMs: 100, what: 'the job after the failover' },
        );
        expect(done.returnvalue).toBe(42);
      } finally {
        if (direct) await closeRedisClient(direct);
        await worker.close();
        await queue.close();
        await connections.close();
      }
    });
  });
});
