import { createRedisClient, type RedisClient } from '@app/redis';
import { PrivateRedisServer, testConfig, waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
} from './support/test-sleep.task';

const PROJECT = 'redis_full';
const SUBMITS = 9000;
const IN_FLIGHT = 32;

/**
 * Issue 12, "when Redis refuses writes, tasks are left stuck for good": the repro as filed. A
 * private redis-server with 20 MB and noeviction under an API and a worker, 9,000 submits at 32
 * in flight until Redis refuses writes. Every answer is a 201 or a 503 with Retry-After (never a
 * 500); every 201 is a task that exists and ends once Redis has room again (the runner puts back
 * what it could not claim or record, the reconciler requeues what lost its job); no record
 * exists for a client that was told 503.
 */
describe('Redis out of memory under load (the issue 12 repro)', () => {
  const redisServer = new PrivateRedisServer({
    args: ['--maxmemory', '20mb', '--maxmemory-policy', 'noeviction'],
  });
  let service: TestService;
  let admin: RedisClient;

  beforeAll(async () => {
    await redisServer.start();
    admin = createRedisClient(testConfig({ REDIS_URL: redisServer.url }), 'admin');
    service = new TestService({
      extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
      extraWorkerModules: [TestProcessorsModule],
      env: {
        REDIS_URL: redisServer.url,
        QUEUE_MAX_SIZE: '1000000',
        RATE_LIMIT_SUBMIT: '0',
        WORKER_CONCURRENCY_CPU_INTENSIVE: '8',
        RECONCILE_INTERVAL_MS: '500',
        RECONCILE_GRACE_MS: '2000',
        RECONCILE_BATCH: '20000',
      },
    });
    await service.start();
  }, 120_000);

  afterAll(async () => {
    await service?.close();
    admin?.disconnect();
    await redisServer.stop();
  });

  it('answers 201 or 503, never 500, and every accepted task ends once Redis has room', async () => {
    const statuses = new Map<number, number>();
    const accepted: string[] = [];
    let retryAfterMissing = 0;
    let next = 0;
    const loop = async () => {
      while (next < SUBMITS) {
        next += 1;
        const res = await service.http.post('/tasks/submit', {
          project_id: PROJECT,
          task_type: 'test_sleep',
          task_data: { duration_ms: 0, steps: 1 },
        });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status === 201) accepted.push(res.body.task_id as string);
        else if (res.status === 503 && !res.headers.get('retry-after')) retryAfterMissing += 1;
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
    const answers = Object.fromEntries(statuses);
    // Redis did fill up, and every answer was one a client can act on.
    expect(answers[503]).toBeGreaterThan(0);
    expect(Object.keys(answers).sort()).toEqual(['201', '503']);
    expect(retryAfterMissing).toBe(0);

    await admin.config('SET', 'maxmemory', '300mb');
    const ended = await waitFor(
      async () => {
        const res = await service.http.get(`/projects/${PROJECT}/tasks?status=completed&limit=1`);
        return res.body.pagination.total === accepted.length
          ? res.body.pagination.total
          : undefined;
      },
      {
        timeoutMs: 300_000,
        intervalMs: 1000,
        what: `all ${accepted.length} accepted tasks to complete`,
        explain: () => `answers ${JSON.stringify(answers)}`,
      },
    );
    expect(ended).toBe(accepted.length);
    // One record per 201 and none for a 503; nothing left queued or processing.
    const all = await service.http.get(`/projects/${PROJECT}/tasks?limit=1`);
    expect(all.body.pagination.total).toBe(accepted.length);
    for (const status of ['queued', 'processing', 'failed']) {
      const res = await service.http.get(`/projects/${PROJECT}/tasks?status=${status}&limit=1`);
      expect({ status, total: res.body.pagination.total }).toEqual({ status, total: 0 });
    }
  }, 600_000);
});
