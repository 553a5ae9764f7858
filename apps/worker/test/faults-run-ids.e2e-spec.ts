import { createRedisClient, type RedisClient } from '@app/redis';
import { TaskRepository } from '@app/tasks';
import { waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { TaskRunner } from '../src/runtime/task-runner';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from './support/test-sleep.task';

const PROJECT = 'run_ids';

/**
 * Issue 12, "runs are tracked by task id": a task whose job comes back to the same process (its
 * lock was lost) gets a second run there. Runs are known by run id, so the second one stays
 * visible: a cancel reaches it and stops it, and nothing of the first run removes it.
 */
describe('two runs of one task in one process', () => {
  let service: TestService;
  let redis: RedisClient;

  beforeAll(async () => {
    service = new TestService({
      extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
      extraWorkerModules: [TestProcessorsModule],
      env: {
        WORKER_LOCK_DURATION_MS: '2000',
        WORKER_STALLED_INTERVAL_MS: '500',
        WORKER_CONCURRENCY_CPU_INTENSIVE: '2',
      },
    });
    await service.start();
    redis = createRedisClient(service.config, 'spec');
  });

  afterAll(async () => {
    redis?.disconnect();
    await service?.close();
  });

  it('the run after a lost lock is the one a cancel stops; it never runs to its end', async () => {
    testSleepLog.reset();
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_sleep',
      task_data: { duration_ms: 20_000, steps: 200 },
    });
    const id = res.body.task_id as string;
    const records = service.api.get(TaskRepository);
    const runner = service.worker!.get(TaskRunner, { strict: false });
    await waitFor(async () => ((await records.get(id))?.progress ?? 0) > 0 || undefined, {
      timeoutMs: 30_000,
      what: 'the first run to report progress',
    });
    const firstRun = (await records.get(id))!.run_id;
    // The lock is lost once: the first run stops, the job comes back here and runs again.
    await redis.del(`${service.config.redis.prefix}:bull:{cpu_intensive}:cpu_intensive:${id}:lock`);
    const second = await waitFor(
      async () => {
        const r = await records.get(id);
        return r?.status === 'processing' && r.run_id !== firstRun && r.progress > 0
          ? r
          : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50, what: 'a second run of the task' },
    );
    expect(second).toMatchObject({ attempts: 1, lock_losses: 1 });
    expect(runner.runs.byTask(id).map((r) => r.runId)).toEqual([second.run_id]);

    const cancelled = await service.http.delete(`/tasks/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    await waitFor(async () => (runner.activeTaskIds().includes(id) ? undefined : true), {
      timeoutMs: 10_000,
      what: 'the second run to stop',
    });
    expect(testSleepLog.runs.get(id)).toBe(2);
    expect(testSleepLog.finished.has(id)).toBe(false);
    expect(await records.get(id)).toMatchObject({ status: 'cancelled', run_id: second.run_id });
  }, 90_000);
});
