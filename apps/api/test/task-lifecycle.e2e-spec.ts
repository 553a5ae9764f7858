import { waitFor } from '@app/testing';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from '../../worker/test/support/test-sleep.task';
import { TestService } from './support/service.harness';

const PROJECT = 'lifecycle_proj';

function sleepTask(task_data: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return { project_id: PROJECT, task_type: 'test_sleep', task_data, ...extra };
}

describe('task lifecycle (API + worker, real Redis)', () => {
  const service = new TestService({
    extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
    extraWorkerModules: [TestProcessorsModule],
    env: { MAX_RETRY_ATTEMPTS: '2' },
  });

  beforeAll(() => service.start());
  afterAll(() => service.close());
  beforeEach(() => testSleepLog.reset());

  const status = async (id: string) => (await service.http.get(`/tasks/${id}/status`)).body;
  const until = (id: string, wanted: string[], timeoutMs = 20_000) =>
    waitFor(
      async () => {
        const s = await status(id);
        return wanted.includes(s.status) ? s : undefined;
      },
      { timeoutMs, what: `task ${id} to be ${wanted.join('|')}` },
    );

  it('runs a task to completed with monotonic progress and named steps', async () => {
    const submitted = await service.http.post(
      '/tasks/submit',
      sleepTask({ duration_ms: 600, steps: 6 }),
    );
    expect(submitted.status).toBe(201);
    expect(submitted.body).toEqual({
      task_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      status: 'queued',
      project_id: PROJECT,
      estimated_duration: 1,
      queue_position: expect.any(Number),
      created_at: expect.any(String),
    });
    const id = submitted.body.task_id as string;
    const seen: Array<{ status: string; progress: number; step: string }> = [];
    const done = await waitFor(async () => {
      const s = await status(id);
      seen.push({ status: s.status, progress: s.progress, step: s.current_step });
      return s.status === 'completed' ? s : undefined;
    });
    const progresses = seen.map((s) => s.progress);
    expect(progresses).toEqual([...progresses].sort((a, b) => a - b));
    expect(seen.some((s) => s.status === 'processing' && s.step === 'sleeping')).toBe(true);
    expect(done).toMatchObject({ progress: 1, current_step: 'upload_complete', error: null });
    expect(done.started_at).toEqual(expect.any(String));
    expect(done.completed_at).toEqual(expect.any(String));
    expect(done.result.metadata).toMatchObject({ slept_ms: 600, file_size: expect.any(Number) });
    const media = await fetch(done.result.media_url);
    expect(media.status).toBe(200);
    expect(await media.json()).toEqual({ slept_ms: 600 });
    expect(done.result.media_url).toContain(`/media/projects/${PROJECT}/audio/${id}/output.json`);
  });

  it('refuses a tampered or foreign media URL', async () => {
    const { body } = await service.http.post(
      '/tasks/submit',
      sleepTask({ duration_ms: 10, steps: 1 }),
    );
    const done = await until(body.task_id, ['completed']);
    const url = new URL(done.result.media_url);
    const signature = url.searchParams.get('signature')!;
    // Change the first character for certain (a signature may itself start with 'x').
    url.searchParams.set('signature', (signature[0] === 'x' ? 'y' : 'x') + signature.slice(1));
    expect((await fetch(url)).status).toBe(403);
    const other = done.result.media_url.replace(`/projects/${PROJECT}/`, '/projects/other_proj/');
    expect((await fetch(other)).status).toBe(403);
    const traversal = done.result.media_url.replace(
      `/projects/${PROJECT}/`,
      '/projects/..%2F..%2Fetc/',
    );
    expect([403, 404]).toContain((await fetch(traversal)).status);
  });

  it('cancels a running task: the processor sees its signal and the task ends cancelled', async () => {
    const { body } = await service.http.post(
      '/tasks/submit',
      sleepTask({ duration_ms: 20_000, steps: 200 }),
    );
    const id = body.task_id as string;
    await waitFor(async () =>
      (await status(id)).current_step === 'warming_up' ? true : undefined,
    );
    const t0 = Date.now();
    const cancelled = await service.http.delete(`/tasks/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ task_id: id, status: 'cancelled' });
    await waitFor(async () => (testSleepLog.aborted.has(id) ? true : undefined), {
      timeoutMs: 2000,
    });
    expect(Date.now() - t0).toBeLessThan(1500);
    // It stays cancelled: the run never completes or fails it afterwards.
    await new Promise((r) => setTimeout(r, 400));
    expect((await status(id)).status).toBe('cancelled');
    expect(testSleepLog.finished.has(id)).toBe(false);
    expect((await service.http.delete(`/tasks/${id}/cancel`)).status).toBe(409);
  });

  it('retries a failed task with the same parameters', async () => {
    const { body } = await service.http.post(
      '/tasks/submit',
      sleepTask({ duration_ms: 50, steps: 2, fail_times: 1, fail_kind: 'validation' }),
    );
    const id = body.task_id as string;
    const failed = await until(id, ['failed', 'completed']);
    expect(failed.status).toBe('failed');
    expect(failed.error).toContain('bad input (run 1)');
    expect(failed.completed_at).toEqual(expect.any(String));
    expect(testSleepLog.runs.get(id)).toBe(1); // validation errors are not retried

    const retried = await service.http.post(`/tasks/${id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ task_id: id, status: 'queued', project_id: PROJECT });
    const done = await until(id, ['completed', 'failed']);
    expect(done).toMatchObject({ status: 'completed', error: null });
    expect(testSleepLog.runs.get(id)).toBe(2);
    expect((await service.http.post(`/tasks/${id}/retry`)).status).toBe(409);
  });

  it('retries network errors automatically, up to MAX_RETRY_ATTEMPTS', async () => {
    const ok = await service.http.post(
      '/tasks/submit',
      sleepTask({ duration_ms: 20, steps: 1, fail_times: 2, fail_kind: 'network' }),
    );
    expect((await until(ok.body.task_id, ['completed', 'failed'])).status).toBe('completed');
    expect(testSleepLog.runs.get(ok.body.task_id)).toBe(3);

    const ko = await service.http.post(
      '/tasks/submit',
      sleepTask({ duration_ms: 20, steps: 1, fail_times: 5, fail_kind: 'gpu_memory' }),
    );
    const failed = await until(ko.body.task_id, ['completed', 'failed']);
    expect(failed.status).toBe('failed');
    expect(failed.error).toContain('out of memory');
    expect(testSleepLog.runs.get(ko.body.task_id)).toBe(3); // 1 run + MAX_RETRY_ATTEMPTS (2)
  });

  it('fails a run that passes its time limit, even if the processor ignores its signal', async () => {
    const { body } = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_timeout',
      task_data: { duration_ms: 5000, steps: 5, ignore_signal: true },
    });
    const failed = await until(body.task_id, ['failed', 'completed'], 4000);
    expect(failed.status).toBe('failed');
    expect(failed.error).toContain('time limit of 1 s');
  });

  it('lists the running worker with a fresh heartbeat', async () => {
    const res = await service.http.get('/workers/status');
    expect(res.status).toBe(200);
    expect(res.body.total_workers).toBe(1);
    const [worker] = res.body.workers;
    expect(worker).toMatchObject({
      worker_type: ['gpu_heavy', 'gpu_medium', 'cpu_intensive'],
      status: expect.stringMatching(/^(idle|active|busy)$/),
      backend: expect.any(String),
    });
    expect(Date.now() - Date.parse(worker.last_heartbeat)).toBeLessThan(5000);
  });
});
