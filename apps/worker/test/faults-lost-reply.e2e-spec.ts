import { ReplyDroppingProxy, waitForTaskEnd } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from './support/test-sleep.task';

const PROJECT = 'lost_reply';

/**
 * Issue 12, "a Redis reply lost after a script ran strands the task": a TCP proxy in front of
 * Redis lets one script reach Redis and cuts the connection before its reply. ioredis re-sends
 * the command on reconnect, so every script runs twice; each move is safe to repeat (its
 * operation token), and nothing is stranded.
 */
describe('a Redis reply lost after the script ran', () => {
  const proxy = new ReplyDroppingProxy({ host: '127.0.0.1', port: 6379 });
  let service: TestService;

  beforeAll(async () => {
    await proxy.start();
    service = new TestService({
      extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
      extraWorkerModules: [TestProcessorsModule],
      // The reconnect and re-send after a cut reply must not race the command bound on a busy
      // machine (a timed-out command is a 503 by design, not what this spec is about).
      env: { REDIS_URL: proxy.url, REDIS_COMMAND_TIMEOUT_MS: '30000' },
    });
    await service.start();
  });

  afterAll(async () => {
    await service?.close();
    await proxy.stop();
  });

  beforeEach(() => testSleepLog.reset());

  const ended = (id: string) => waitForTaskEnd(service.http, id, { timeoutMs: 60_000 });
  const projectTasks = async () =>
    (await service.http.get(`/projects/${PROJECT}/tasks?limit=100`)).body.tasks as Array<{
      task_id: string;
    }>;

  it("the create's reply: the client still gets its 201, one task exists and it runs", async () => {
    const before = (await projectTasks()).length;
    const dropped = proxy.dropReplyTo('estimated_duration');
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_sleep',
      task_data: { duration_ms: 50, steps: 2 },
    });
    await dropped;
    expect(res.status).toBe(201);
    const id = res.body.task_id as string;
    expect(await ended(id)).toMatchObject({ status: 'completed', progress: 1 });
    expect((await projectTasks()).length).toBe(before + 1);
    expect(testSleepLog.runs.get(id)).toBe(1);
  });

  it("an automatic retry's move: the job is delayed, not completed, and the retry runs", async () => {
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_sleep',
      task_data: { duration_ms: 50, steps: 2, fail_times: 1, fail_kind: 'network' },
    });
    expect(res.status).toBe(201);
    const id = res.body.task_id as string;
    const dropped = proxy.dropReplyTo('waiting_for_retry');
    await dropped;
    const done = await ended(id);
    expect(done).toMatchObject({ status: 'completed', progress: 1, error: null });
    expect(testSleepLog.runs.get(id)).toBe(2);
  });

  it("a manual retry's move: 200, never 409, and the task runs again", async () => {
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_sleep',
      task_data: { duration_ms: 50, steps: 2, fail_times: 1, fail_kind: 'validation' },
    });
    const id = res.body.task_id as string;
    expect(await ended(id)).toMatchObject({ status: 'failed' });
    const dropped = proxy.dropReplyTo('"retries"');
    const retry = await service.http.post(`/tasks/${id}/retry`, {});
    await dropped;
    expect(retry.status).toBe(200);
    expect(await ended(id)).toMatchObject({ status: 'completed' });
    expect(testSleepLog.runs.get(id)).toBe(2);
  });
});
