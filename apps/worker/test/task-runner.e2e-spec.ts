import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import { createRedisClient } from '@app/redis';
import type { PayloadClient } from '@app/payload';
import type { StorageDriver } from '@app/storage';
import {
  QueueName,
  TaskDefinitions,
  TaskRepository,
  TaskStateMachine,
  type TaskDefinition,
  type TaskJobData,
} from '@app/tasks';
import { newTaskId } from '@app/redis';
import { cleanRedis, testConfig } from '@app/testing';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { IsOptional, IsString } from 'class-validator';
import { ReplyError } from 'ioredis';
import type { ProcessorRegistry } from '../src/runtime/processor.registry';
import { RunOutput } from '../src/runtime/run-output';
import { TaskEvents, type TaskEvent } from '../src/runtime/task-events';
import type { RunningTask, TaskOutput, TaskProcessor } from '../src/runtime/task-processor';
import { TaskRunner } from '../src/runtime/task-runner';
import { SafetyCheck } from '../src/safety/safety.check';
import type { SafetyClassifier } from '../src/safety/safety.classifier';

class NoData {
  @IsOptional()
  @IsString()
  note?: string;
}

const TYPE = 'runner_spec';
const DEFINITION: TaskDefinition<NoData> = {
  type: TYPE,
  description: 'runner spec: configurable work',
  queue: QueueName.CpuIntensive,
  mediaKind: 'audio',
  dataClass: NoData,
  estimateDuration: () => 0,
};

const OUTPUT: TaskOutput = {
  media: {
    kind: 'buffer',
    data: Buffer.from('{}'),
    extension: 'json',
    contentType: 'application/json',
  },
  metadata: {},
};

/** The runner against the real Redis (records, scripts), with storage, jobs and processor faked. */
describe('TaskRunner', () => {
  const config = testConfig({ UNKNOWN_TASK_TYPE_TIMEOUT: '60' });
  const redis = createRedisClient(config, 'spec');
  const tasks = new TaskRepository(redis, config);
  const moves = new TaskStateMachine(redis, tasks);
  const stored = new Map<string, number>();
  const storage = {
    put: jest.fn((key: string, body: { data: Buffer }, contentType: string) => {
      stored.set(key, body.data.length);
      return Promise.resolve({ key, size: body.data.length, contentType });
    }),
    delete: jest.fn((key: string) => {
      stored.delete(key);
      return Promise.resolve();
    }),
  };
  let work: (task: RunningTask<NoData>) => Promise<TaskOutput> = () => Promise.resolve(OUTPUT);
  const processor: TaskProcessor<NoData> = { process: (task) => work(task) };
  const registry = { get: (type: string) => (type === TYPE ? processor : undefined) };
  const events = new TaskEvents();
  const seen: TaskEvent[] = [];
  events.on((e) => seen.push(e));
  const runner = new TaskRunner(
    tasks,
    moves,
    new TaskDefinitions([DEFINITION]),
    registry as unknown as ProcessorRegistry,
    new RunOutput(storage as unknown as StorageDriver, { enabled: false } as PayloadClient),
    config,
    events,
    // Never used: no task here asks for safety_check.
    new SafetyCheck({} as SafetyClassifier, config),
  );
  const progress = jest.spyOn(moves, 'reportProgress');

  beforeAll(() => Logger.overrideLogger(false));

  beforeEach(() => {
    work = () => Promise.resolve(OUTPUT);
    progress.mockClear();
    storage.put.mockClear();
    storage.delete.mockClear();
    seen.length = 0;
  });

  afterAll(async () => {
    Logger.overrideLogger(new Logger());
    await cleanRedis(config);
    redis.disconnect();
  });

  async function create(): Promise<string> {
    const id = newTaskId('proj_runner');
    await tasks.create({
      task_id: id,
      project_id: 'proj_runner',
      task_type: TYPE,
      priority: 2,
      task_data: {},
      estimated_duration: 0,
      queue: QueueName.CpuIntensive,
      job_id: id,
      created_at: new Date(),
    });
    return id;
  }

  type FakeJob = Job<TaskJobData> & { moveToDelayed: jest.Mock; moveToWait: jest.Mock };
  function job(taskId: string, jobId = taskId, name = TYPE, timestamp = Date.now()): FakeJob {
    return {
      id: jobId,
      name,
      data: { task_id: taskId, project_id: 'proj_runner' },
      timestamp,
      moveToDelayed: jest.fn(() => Promise.resolve()),
      moveToWait: jest.fn(() => Promise.resolve()),
    } as unknown as FakeJob;
  }
  const claimOpts = () => ({
    op: randomUUID(),
    ownLostRuns: [],
    maxLostRuns: 5,
    startedAt: new Date().toISOString(),
  });
  const oom = () =>
    new ReplyError("OOM command not allowed when used memory > 'maxmemory'.") as Error;
  /** Resolves once the processor of a run has started (its first progress report). */
  function started(): {
    promise: Promise<RunningTask<NoData>>;
    resolve: (t: RunningTask<NoData>) => void;
  } {
    let resolve!: (t: RunningTask<NoData>) => void;
    const promise = new Promise<RunningTask<NoData>>((r) => (resolve = r));
    return { promise, resolve };
  }

  const steps = () => progress.mock.calls.map((c) => c[3]);

  it('starts, stores and completes a short run without an uploading_result write', async () => {
    const id = await create();
    expect(await runner.run(job(id), 'token')).toBe('completed');
    const task = await tasks.get(id);
    expect(task).toMatchObject({
      status: 'completed',
      attempts: 1,
      run_id: `${id}#1`,
      progress: 1,
      current_step: 'upload_complete',
      result: { content_type: 'application/json', metadata: { file_size: 2 } },
    });
    expect(stored.has(task!.result!.media_key)).toBe(true);
    expect(steps()).toEqual([]);
    expect(seen.map((e) => [e.type, e.attempt])).toEqual([
      ['started', 1],
      ['completed', 1],
    ]);
  });

  it('still shows uploading_result after a run longer than the progress interval', async () => {
    const id = await create();
    work = async (task) => {
      await task.progress(0.5, 'generating');
      await new Promise((resolve) => setTimeout(resolve, 250));
      return OUTPUT;
    };
    expect(await runner.run(job(id), 'token')).toBe('completed');
    expect(steps()).toEqual(['generating', 'uploading_result']);
  });

  it('takes over a stalled run of a lost worker as the next attempt', async () => {
    const id = await create();
    await moves.claimRun(id, id, claimOpts());
    expect(await runner.run(job(id), 'token')).toBe('completed');
    expect(await tasks.get(id)).toMatchObject({
      status: 'completed',
      attempts: 2,
      run_id: `${id}#2`,
    });
  });

  it('drops a missing record or a superseded job and skips a finished task, untouched', async () => {
    expect(await runner.run(job(randomUUID()), 'token')).toBe('missing');

    const id = await create();
    const before = await redis.hgetall(tasks.taskKey(id));
    expect(await runner.run(job(id, `${id}_r0`), 'token')).toBe('superseded');
    expect(await redis.hgetall(tasks.taskKey(id))).toEqual(before);

    await moves.cancel(id);
    const cancelled = await redis.hgetall(tasks.taskKey(id));
    expect(await runner.run(job(id), 'token')).toBe('skipped');
    expect(await redis.hgetall(tasks.taskKey(id))).toEqual(cancelled);
    expect(storage.put).not.toHaveBeenCalled();
    expect(seen).toEqual([]);
  });

  it('a cancel that lands while a short run finishes wins, and its output is removed', async () => {
    const id = await create();
    work = async () => {
      await moves.cancel(id);
      return OUTPUT;
    };
    expect(await runner.run(job(id), 'token')).toBe('cancelled');
    expect(await tasks.get(id)).toMatchObject({ status: 'cancelled', result: null });
    const key = storage.put.mock.calls[0]?.[0];
    expect(storage.delete).toHaveBeenCalledWith(key);
    expect(stored.has(key)).toBe(false);
    expect(seen.map((e) => e.type)).toEqual(['started', 'cancelled']);
  });

  it('a run taken over by another stops at its next report and touches nothing of the new run', async () => {
    const id = await create();
    const running = started();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    work = async (task) => {
      running.resolve(task);
      await gate;
      await task.progress(0.9, 'late');
      return OUTPUT;
    };
    const first = runner.run(job(id), 'token-1');
    await running.promise;
    const takeover = await moves.claimRun(id, id, claimOpts());
    expect(takeover.outcome).toBe('started');
    const newRun = takeover.outcome === 'started' ? takeover.task.run_id : null;
    await moves.reportProgress(id, newRun!, 0.3, 'new_run');
    release();
    expect(await first).toBe('superseded');
    expect(await tasks.get(id)).toMatchObject({
      status: 'processing',
      run_id: newRun,
      progress: 0.3,
      current_step: 'new_run',
    });
    expect(storage.put).not.toHaveBeenCalled();
  });

  it('a lost lock stops the run and hands the task back with no attempt charged', async () => {
    const id = await create();
    const running = started();
    work = (task) => {
      running.resolve(task);
      return new Promise(() => undefined); // never finishes by itself
    };
    const j = job(id);
    const run = runner.run(j, 'token');
    await running.promise;
    runner.locksLost([id]);
    await expect(run).rejects.toBeInstanceOf(DelayedError);
    // The job is no longer this call's: BullMQ's stalled check moves it, not us.
    expect(j.moveToDelayed).not.toHaveBeenCalled();
    expect(await tasks.get(id)).toMatchObject({
      status: 'queued',
      attempts: 0,
      current_step: 'requeued_after_lock_loss',
    });
    expect(runner.runs.lostRunIds()).toContain(`${id}#1`);
    // The next run starts at attempt 1 again.
    work = () => Promise.resolve(OUTPUT);
    expect(await runner.run(job(id), 'token-2')).toBe('completed');
    expect(await tasks.get(id)).toMatchObject({ attempts: 1, run_id: `${id}#2` });
  });

  it('a takeover of its own lost run (hand-back never reached Redis) charges nothing', async () => {
    const id = await create();
    const claim = await moves.claimRun(id, id, claimOpts());
    const lost = claim.outcome === 'started' ? claim.task.run_id! : '';
    runner.runs.markLost(lost);
    expect(await runner.run(job(id), 'token')).toBe('completed');
    expect(await tasks.get(id)).toMatchObject({ attempts: 1, lost_runs: 0, run_id: `${id}#2` });
  });

  it('a job fetched again while its earlier call is still here waits; the earlier run stops', async () => {
    const id = await create();
    const running = started();
    work = (task) => {
      running.resolve(task);
      return new Promise(() => undefined);
    };
    runner.runs.callStarted(id);
    const first = runner.run(job(id), 'token-1');
    await running.promise;
    runner.runs.callStarted(id);
    const again = job(id);
    await expect(runner.run(again, 'token-2')).rejects.toBeInstanceOf(DelayedError);
    expect(again.moveToDelayed).toHaveBeenCalledWith(expect.any(Number), 'token-2');
    await expect(first).rejects.toBeInstanceOf(DelayedError);
    runner.runs.callEnded(id);
    runner.runs.callEnded(id);
    expect(await tasks.get(id)).toMatchObject({ status: 'queued', attempts: 0 });
  });

  it('Redis refusing the claim puts the job back delayed instead of failing it', async () => {
    const id = await create();
    jest.spyOn(moves, 'claimRun').mockRejectedValueOnce(oom());
    const j = job(id);
    await expect(runner.run(j, 'token')).rejects.toBeInstanceOf(DelayedError);
    expect(j.moveToDelayed).toHaveBeenCalledWith(expect.any(Number), 'token');
    expect((await tasks.get(id))!.status).toBe('queued');
  });

  it('an outcome write Redis keeps refusing hands the task back and delays the job', async () => {
    const id = await create();
    const complete = jest.spyOn(moves, 'complete').mockRejectedValue(oom());
    const j = job(id);
    try {
      await expect(runner.run(j, 'token')).rejects.toBeInstanceOf(DelayedError);
      expect(complete).toHaveBeenCalledTimes(5);
    } finally {
      complete.mockRestore();
    }
    expect(j.moveToDelayed).toHaveBeenCalled();
    expect(await tasks.get(id)).toMatchObject({
      status: 'queued',
      attempts: 0,
      current_step: 'requeued_after_redis_error',
    });
  });

  it('an outcome write whose reply was lost is tried again with the same token and lands once', async () => {
    const id = await create();
    const real = moves.complete.bind(moves);
    const complete = jest.spyOn(moves, 'complete').mockImplementationOnce(async (...args) => {
      await real(...args); // the write lands, its reply is lost
      throw new Error('Connection is closed.');
    });
    try {
      expect(await runner.run(job(id), 'token')).toBe('completed');
      expect(complete).toHaveBeenCalledTimes(2);
      expect(complete.mock.calls[0][3]).toEqual(complete.mock.calls[1][3]);
    } finally {
      complete.mockRestore();
    }
    expect((await tasks.get(id))!.status).toBe('completed');
  });

  it('a retryable error schedules a retry of its class and delays the job until it is due', async () => {
    const id = await create();
    work = () =>
      Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    const j = job(id);
    await expect(runner.run(j, 'token')).rejects.toBeInstanceOf(DelayedError);
    const task = (await tasks.get(id))!;
    expect(task).toMatchObject({
      status: 'queued',
      current_step: 'waiting_for_retry',
      error_class: 'network',
      class_retries: { network: 1 },
    });
    expect(Date.parse(task.next_retry_at!)).toBe(j.moveToDelayed.mock.calls[0][0]);
  });

  it('a default error is retried once (seed 000), then fails', async () => {
    const id = await create();
    work = () => Promise.reject(new Error('boom'));
    await expect(runner.run(job(id), 'token-1')).rejects.toBeInstanceOf(DelayedError);
    await expect(runner.run(job(id), 'token-2')).rejects.toBeInstanceOf(UnrecoverableError);
    expect(await tasks.get(id)).toMatchObject({
      status: 'failed',
      error: 'boom',
      error_class: 'default',
      next_retry_at: null,
    });
  });

  it('a task type this worker does not know goes back to the queue, and fails after the bound', async () => {
    const id = await create();
    const fresh = job(id, id, 'newer_type');
    await expect(runner.run(fresh, 'token')).rejects.toBeInstanceOf(DelayedError);
    expect(fresh.moveToDelayed).toHaveBeenCalled();
    expect((await tasks.get(id))!.status).toBe('queued');
    const old = job(id, id, 'newer_type', Date.now() - 61_000);
    await expect(runner.run(old, 'token')).rejects.toBeInstanceOf(UnrecoverableError);
    expect(await tasks.get(id)).toMatchObject({
      status: 'failed',
      error: expect.stringContaining('no worker serves task type newer_type'),
    });
  });

  it('removes the output file of a processor that finishes after its run was cancelled', async () => {
    const id = await create();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'runner-late-'));
    const file = path.join(dir, 'output.json');
    const running = started();
    let finish!: () => void;
    work = (task) => {
      running.resolve(task);
      return new Promise((resolve) => {
        finish = () => {
          writeFileSync(file, '{}');
          resolve({
            ...OUTPUT,
            media: { kind: 'file', path: file, extension: 'json', contentType: 'application/json' },
          });
        };
      });
    };
    const run = runner.run(job(id), 'token');
    await running.promise;
    await moves.cancel(id);
    runner.abort(id, new (await import('../src/runtime/task-errors')).TaskCancelledError());
    expect(await run).toBe('cancelled');
    finish();
    await new Promise((r) => setTimeout(r, 100));
    expect(existsSync(file)).toBe(false);
  });
});
