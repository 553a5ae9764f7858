import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getQueueToken } from '@nestjs/bullmq';
import { Worker, type Queue } from 'bullmq';
import { RedisClientFactory } from '@app/redis';
import { bullPrefix, TaskRepository } from '@app/tasks';
import { freePort, TestPayloadServer, waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { TEST_BUSY_TASK } from './support/test-busy.task';
import { TEST_SLEEP_TASK } from './support/test-sleep.task';
import { readEvidence, WorkerProcess } from './support/worker-process.harness';

const PROJECT = 'faults_proj';
const PAYLOAD_KEY = 'payload-faults-key';

/**
 * Issue 6, faults: real worker processes (SIGKILL, SIGTERM) against the real Redis, with the API
 * in this process. Every worker process writes the runs of its test processor to an evidence
 * file, so runs are counted across processes.
 */
describe('worker faults: SIGKILL and SIGTERM of real worker processes', () => {
  const payload = new TestPayloadServer('media', `users API-Key ${PAYLOAD_KEY}`);
  const workers: WorkerProcess[] = [];
  let service: TestService;
  let env: Record<string, string>;
  let tmp: string;

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'faults-spec-'));
    env = {
      REDIS_PREFIX: `test-${randomBytes(4).toString('hex')}`,
      STORAGE_LOCAL_DIR: mkdtempSync(path.join(os.tmpdir(), 'test-media-')),
      PAYLOAD_API_URL: await payload.start(),
      PAYLOAD_API_KEY: PAYLOAD_KEY,
      PAYLOAD_TIMEOUT_MS: '5000',
      WORKER_QUEUES: 'cpu_intensive',
      // A dead worker's job is found within ~2 s (lock) + 2 × 0.5 s (stalled checks).
      WORKER_LOCK_DURATION_MS: '2000',
      WORKER_STALLED_INTERVAL_MS: '500',
    };
    service = new TestService({
      worker: false,
      extraDefinitions: [TEST_SLEEP_TASK, TEST_BUSY_TASK],
      env,
    });
    await service.start();
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.kill()));
  });

  afterAll(async () => {
    await service?.close();
    await payload.stop();
  });

  function startWorker(extra: Record<string, string>, evidence: string): WorkerProcess {
    const worker = new WorkerProcess({ ...env, ...extra }, evidence);
    workers.push(worker);
    return worker;
  }

  async function submit(
    taskData: Record<string, unknown>,
    taskType = 'test_sleep',
  ): Promise<string> {
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: taskType,
      task_data: taskData,
    });
    expect(res.status).toBe(201);
    return res.body.task_id as string;
  }

  const status = async (id: string) => (await service.http.get(`/tasks/${id}/status`)).body;
  const record = (id: string) => service.api.get(TaskRepository).get(id);

  function until(id: string, wanted: string, timeoutMs = 30_000) {
    return waitFor(
      async () => {
        const s = await status(id);
        return s.status === wanted ? s : undefined;
      },
      { timeoutMs, intervalMs: 50, what: `task ${id} ${wanted}` },
    );
  }

  function untilStarted(evidence: string, id: string, count: number, timeoutMs = 30_000) {
    return waitFor(
      async () => {
        const starts = readEvidence(evidence).filter((e) => e.event === 'start' && e.taskId === id);
        return starts.length >= count ? starts : undefined;
      },
      { timeoutMs, intervalMs: 25, what: `run ${count} of task ${id} to start` },
    );
  }

  function storedFiles(id: string): string[] {
    const dir = path.join(env.STORAGE_LOCAL_DIR, 'projects', PROJECT, 'audio', id);
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  }

  it('SIGKILL mid-task: a new worker takes the stalled job over and completes it once', async () => {
    const evidence = path.join(tmp, 'sigkill.log');
    const first = startWorker({}, evidence);
    await first.ready();
    const id = await submit({ duration_ms: 4000, steps: 20 });
    await untilStarted(evidence, id, 1);
    await until(id, 'processing');
    first.child.kill('SIGKILL');
    await first.exited;

    const second = startWorker({}, evidence);
    await second.ready();
    const done = await until(id, 'completed', 40_000);
    expect(done.progress).toBe(1);

    const runs = readEvidence(evidence).filter((e) => e.taskId === id);
    expect(runs).toEqual([
      { event: 'start', taskId: id, pid: first.pid },
      { event: 'start', taskId: id, pid: second.pid },
      { event: 'finish', taskId: id, pid: second.pid },
    ]);
    // The takeover is a second attempt with a run id of its own.
    expect(await record(id)).toMatchObject({ status: 'completed', attempts: 2, run_id: `${id}#2` });
    // One output in storage, one document in Payload.
    expect(storedFiles(id)).toEqual(['output.json']);
    expect(payload.docs.filter((d) => d.fields.task_id === id)).toHaveLength(1);
  });

  it('SIGTERM past the grace period: exits within the bound, the running task is handed back and completes elsewhere', async () => {
    const evidence = path.join(tmp, 'sigterm-grace.log');
    const grace = 1;
    const healthPort = await freePort();
    const first = startWorker(
      { SHUTDOWN_GRACE: String(grace), WORKER_HEALTH_PORT: String(healthPort) },
      evidence,
    );
    await first.ready();
    const id = await submit({ duration_ms: 5000, steps: 50 });
    await untilStarted(evidence, id, 1);
    await until(id, 'processing');

    const signalled = Date.now();
    first.child.kill('SIGTERM');
    // While it waits for its running task, the worker is no longer ready.
    const stopping = await waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${healthPort}/health/ready`);
        const body = (await res.json()) as { error?: { worker?: { phase?: string } } };
        return res.status === 503 ? body : undefined;
      },
      { timeoutMs: 900, intervalMs: 20, what: 'readiness 503 while stopping' },
    );
    expect(stopping.error?.worker?.phase).toBe('stopping');
    const exit = await first.exited;
    const exitMs = exit.at - signalled;
    // Grace, then the hand-back: well inside grace + 5 s, and not before the grace ran out.
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exitMs).toBeGreaterThanOrEqual(grace * 1000 - 100);
    expect(exitMs).toBeLessThan(grace * 1000 + 5000);

    // Handed back: queued again at once, the attempt not charged, the job waiting (not delayed).
    const requeued = await record(id);
    expect(requeued).toMatchObject({
      status: 'queued',
      current_step: 'requeued_after_shutdown',
      attempts: 0,
      progress: 0,
    });
    expect(requeued?.run_id ?? null).toBeNull();
    const queue = service.api.get<Queue>(getQueueToken('cpu_intensive'));
    expect(await queue.getJobState(id)).toBe('prioritized');
    expect(readEvidence(evidence).filter((e) => e.event === 'finish')).toEqual([]);

    const second = startWorker({}, evidence);
    await second.ready();
    await until(id, 'completed', 30_000);
    expect(readEvidence(evidence).filter((e) => e.taskId === id)).toEqual([
      { event: 'start', taskId: id, pid: first.pid },
      { event: 'start', taskId: id, pid: second.pid },
      { event: 'finish', taskId: id, pid: second.pid },
    ]);
    // The handed-back run was not charged: the run that completed is attempt 1.
    expect(await record(id)).toMatchObject({ status: 'completed', attempts: 1 });
    expect(storedFiles(id)).toEqual(['output.json']);
  });

  it('SIGTERM within the grace period: the running task finishes there, no new job is taken, the process exits', async () => {
    const evidence = path.join(tmp, 'sigterm-finish.log');
    const first = startWorker({ SHUTDOWN_GRACE: '20', LOG_LEVEL: 'info' }, evidence);
    await first.ready();
    const id = await submit({ duration_ms: 3000, steps: 30 });
    await untilStarted(evidence, id, 1);

    const signalled = Date.now();
    first.child.kill('SIGTERM');
    // Submitted once the worker has taken the signal (its own line says so; a busy machine may
    // deliver it late): a stopping worker must not take it.
    await waitFor(async () => (first.output.includes('SIGTERM: stopping') ? true : undefined), {
      timeoutMs: 30_000,
      what: 'the worker to take SIGTERM',
    });
    const later = await submit({ duration_ms: 0 });
    const exit = await first.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - signalled).toBeLessThan(20_000);

    expect(await status(id)).toMatchObject({ status: 'completed' });
    expect(readEvidence(evidence)).toEqual([
      { event: 'start', taskId: id, pid: first.pid },
      { event: 'finish', taskId: id, pid: first.pid },
    ]);
    expect(await status(later)).toMatchObject({ status: 'queued' });

    const second = startWorker({}, evidence);
    await second.ready();
    await until(later, 'completed');
  });

  /**
   * A stalled checker in this process (the worker process's own one shares the blocked event
   * loop): reports every job of the queue it finds stalled.
   */
  async function stallWatcher(): Promise<{ stalled: string[]; close: () => Promise<void> }> {
    const stalled: string[] = [];
    const watcher = new Worker('cpu_intensive', null, {
      connection: service.api.get(RedisClientFactory).bullConnection(),
      prefix: bullPrefix(service.config.redis.prefix, 'cpu_intensive'),
      autorun: false,
      stalledInterval: 250,
      // Like the workers' own backstop (far above the record's budget): the record decides.
      maxStalledCount: 1000,
    });
    watcher.on('stalled', (jobId) => stalled.push(jobId));
    await watcher.waitUntilReady();
    await watcher.startStalledCheckTimer();
    return { stalled, close: () => watcher.close() };
  }

  describe('synchronous work in a long task', () => {
    // Lock 1 s, renewed every 0.5 s; a stalled check every 0.25 s from this process.
    const lock = { WORKER_LOCK_DURATION_MS: '1000', WORKER_STALLED_INTERVAL_MS: '500' };

    it('chunks that let the event loop run keep the lock: a task of 6 lock durations runs once', async () => {
      const evidence = path.join(tmp, 'busy.log');
      const watcher = await stallWatcher();
      try {
        const worker = startWorker(lock, evidence);
        await worker.ready();
        const id = await submit({ duration_ms: 6000, chunk_ms: 250 }, 'test_busy');
        const done = await until(id, 'completed', 30_000);
        expect(done.progress).toBe(1);
        expect(readEvidence(evidence)).toEqual([
          { event: 'start', taskId: id, pid: worker.pid },
          { event: 'finish', taskId: id, pid: worker.pid },
        ]);
        expect(watcher.stalled).toEqual([]);
        expect(await record(id)).toMatchObject({ status: 'completed', attempts: 1 });
      } finally {
        await watcher.close();
      }
    });

    it('(control) one chunk longer than the lock is seen as stalled: the run stops each time and the task fails, named', async () => {
      const evidence = path.join(tmp, 'busy-control.log');
      const watcher = await stallWatcher();
      try {
        // One slot: the requeued job is fetched only after the blocked run has ended. With
        // MAX_RETRY_ATTEMPTS 1 a run may lose its own lock 2 × (1 + 1) = 4 times.
        const worker = startWorker(
          { ...lock, WORKER_CONCURRENCY_CPU_INTENSIVE: '1', MAX_RETRY_ATTEMPTS: '1' },
          evidence,
        );
        await worker.ready();
        // Two chunks of three lock durations: the loss is seen between them, so the run is still
        // computing (a run whose work were done would finish its writes instead).
        const id = await submit({ duration_ms: 6000, chunk_ms: 3000 }, 'test_busy');
        await waitFor(async () => (watcher.stalled.includes(id) ? true : undefined), {
          timeoutMs: 15_000,
          what: `job ${id} seen stalled`,
        });
        // Each run lost its lock during its chunk: it stopped and handed the task back (no
        // attempt charged), until the lock-loss budget was spent and the task failed, saying why.
        const failed = await until(id, 'failed', 150_000);
        expect(failed.error).toMatch(/lost its job lock 5 times/);
        expect(await record(id)).toMatchObject({ attempts: 1, lock_losses: 4 });
        expect(readEvidence(evidence).filter((e) => e.event === 'start')).toHaveLength(5);
        // The worker names the task that held its event loop.
        const warning = await waitFor(
          async () =>
            worker.output.split('\n').find((l) => l.includes('event loop blocked')) ?? undefined,
          { timeoutMs: 10_000, what: 'the event loop warning' },
        );
        expect(warning).toContain(id);
      } finally {
        await watcher.close();
      }
    });
  });
});
