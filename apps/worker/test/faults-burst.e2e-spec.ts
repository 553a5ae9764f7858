import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TaskRepository } from '@app/tasks';
import { waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from './support/test-sleep.task';
import { readEvidence, WorkerProcess } from './support/worker-process.harness';

const PROJECT = 'burst_proj';
const TASKS = 1000;
const IN_FLIGHT = 50;

/**
 * Issue 6: 1,000 tasks submitted in a burst (50 requests in flight) to one API, consumed by two
 * workers (one in this process, one a process of its own): every task ends `completed`, and the
 * processor ran each exactly once across both workers.
 */
describe('burst: 1,000 tasks, two workers', () => {
  let service: TestService;
  let worker: WorkerProcess | undefined;
  let evidence: string;

  beforeAll(async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'faults-burst-'));
    evidence = path.join(tmp, 'runs.log');
    const env = {
      WORKER_QUEUES: 'cpu_intensive',
      WORKER_CONCURRENCY_CPU_INTENSIVE: '8',
      QUEUE_MAX_SIZE: '5000',
      RATE_LIMIT_SUBMIT: '1000000',
    };
    service = new TestService({
      extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
      extraWorkerModules: [TestProcessorsModule],
      env,
    });
    await service.start();
    worker = new WorkerProcess(
      {
        ...env,
        REDIS_PREFIX: service.config.redis.prefix,
        STORAGE_LOCAL_DIR: service.config.storage.localDir,
      },
      evidence,
    );
    await worker.ready();
    testSleepLog.reset();
  });

  afterAll(async () => {
    await worker?.kill();
    await service?.close();
  });

  it('every task reaches completed, each run exactly once, none lost or duplicated', async () => {
    const ids: string[] = [];
    const refused: number[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < TASKS) {
          const n = next++;
          const res = await service.http.post('/tasks/submit', {
            project_id: PROJECT,
            task_type: 'test_sleep',
            task_data: { duration_ms: 0, steps: 1 },
            metadata: { n },
          });
          if (res.status === 201) ids.push(res.body.task_id as string);
          else refused.push(res.status);
        }
      }),
    );
    expect(refused).toEqual([]);
    expect(new Set(ids).size).toBe(TASKS);

    const completed = await waitFor(
      async () => {
        const res = await service.http.get(`/projects/${PROJECT}/tasks?status=completed&limit=1`);
        return res.body.pagination.total === TASKS ? TASKS : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250, what: `${TASKS} tasks completed` },
    );
    expect(completed).toBe(TASKS);

    const all = await service.http.get(`/projects/${PROJECT}/tasks?limit=1`);
    expect(all.body.pagination.total).toBe(TASKS);

    // Runs per task, both workers together: exactly one each.
    const runs = new Map<string, number>(testSleepLog.runs);
    const childRuns = readEvidence(evidence).filter((e) => e.event === 'start');
    for (const e of childRuns) runs.set(e.taskId, (runs.get(e.taskId) ?? 0) + 1);
    expect(runs.size).toBe(TASKS);
    expect([...runs.values()].filter((n) => n !== 1)).toEqual([]);
    expect(ids.every((id) => runs.get(id) === 1)).toBe(true);
    // Both workers took part.
    expect(testSleepLog.runs.size).toBeGreaterThan(0);
    expect(childRuns.length).toBeGreaterThan(0);

    const repo = service.api.get(TaskRepository);
    const records = await Promise.all(ids.map((id) => repo.get(id)));
    expect(records.filter((r) => r?.status !== 'completed' || r.attempts !== 1)).toEqual([]);
  });
});
