import { createRedisClient } from '@app/redis';
import { waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { STALLED_LIMIT_REASON } from '../src/runtime/worker-shutdown.errors';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from './support/test-sleep.task';

/**
 * A job whose worker was lost more than maxStalledCount times is failed by BullMQ when a worker
 * next fetches it, without running it. The task must not stay `queued` for ever: it ends
 * `failed` with a reason the user can act on. The stalled checker's mark on the job (its
 * stalled count and deferred failure) is written here as BullMQ's script writes it.
 */
describe('a job lost more often than maxStalledCount', () => {
  const service = new TestService({
    worker: false,
    extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
    extraWorkerModules: [TestProcessorsModule],
    env: { WORKER_QUEUES: 'cpu_intensive' },
  });

  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('ends failed with a clear reason, never run', async () => {
    testSleepLog.reset();
    const res = await service.http.post('/tasks/submit', {
      project_id: 'stalled_proj',
      task_type: 'test_sleep',
      task_data: { duration_ms: 0 },
    });
    expect(res.status).toBe(201);
    const id = res.body.task_id as string;

    const redis = createRedisClient(service.config, 'spec');
    try {
      const jobKey = `${service.config.redis.prefix}:bull:{cpu_intensive}:cpu_intensive:${id}`;
      expect(await redis.exists(jobKey)).toBe(1);
      await redis.hset(jobKey, 'stc', '5', 'defa', STALLED_LIMIT_REASON);
    } finally {
      redis.disconnect();
    }

    await service.startWorker();
    const final = await waitFor(
      async () => {
        const s = (await service.http.get(`/tasks/${id}/status`)).body;
        return s.status === 'queued' ? undefined : s;
      },
      { timeoutMs: 20_000, what: `task ${id} to leave queued` },
    );
    expect(final.status).toBe('failed');
    expect(final.error).toMatch(/worker running this task was lost 5 times/);
    expect(testSleepLog.runs.has(id)).toBe(false);
  });
});
