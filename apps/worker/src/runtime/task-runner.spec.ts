import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { PayloadClient } from '@app/payload';
import type { StorageDriver } from '@app/storage';
import {
  QueueName,
  TaskDefinitions,
  TaskRepository,
  type TaskDefinition,
  type TaskJobData,
} from '@app/tasks';
import { cleanRedis, testConfig } from '@app/testing';
import type { Job } from 'bullmq';
import { IsOptional, IsString } from 'class-validator';
import { Redis } from 'ioredis';
import type { ProcessorRegistry } from './processor.registry';
import { TaskEvents, type TaskEvent } from './task-events';
import type { RunningTask, TaskOutput, TaskProcessor } from './task-processor';
import { TaskRunner } from './task-runner';

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

/** The runner against the real Redis (records, scripts), with storage and processor faked. */
describe('TaskRunner', () => {
  const config = testConfig();
  const redis = new Redis(config.redis.url);
  const tasks = new TaskRepository(redis, config);
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
    new TaskDefinitions([DEFINITION]),
    registry as unknown as ProcessorRegistry,
    storage as unknown as StorageDriver,
    config,
    events,
    { enabled: false } as PayloadClient,
  );
  const progress = jest.spyOn(tasks, 'reportProgress');

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
    const id = randomUUID();
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

  function job(taskId: string, jobId = taskId): Job<TaskJobData> {
    return {
      id: jobId,
      name: TYPE,
      data: { task_id: taskId, project_id: 'proj_runner' },
      timestamp: Date.now(),
    } as unknown as Job<TaskJobData>;
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
    await tasks.startRun(id, id, { started_at: new Date().toISOString() });
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

    await tasks.transition(id, 'cancelled');
    const cancelled = await redis.hgetall(tasks.taskKey(id));
    expect(await runner.run(job(id), 'token')).toBe('skipped');
    expect(await redis.hgetall(tasks.taskKey(id))).toEqual(cancelled);
    expect(storage.put).not.toHaveBeenCalled();
    expect(seen).toEqual([]);
  });

  it('a cancel that lands while a short run finishes wins, and its output is removed', async () => {
    const id = await create();
    work = async () => {
      await tasks.transition(id, 'cancelled');
      return OUTPUT;
    };
    expect(await runner.run(job(id), 'token')).toBe('cancelled');
    expect(await tasks.get(id)).toMatchObject({ status: 'cancelled', result: null });
    const key = storage.put.mock.calls[0]?.[0];
    expect(storage.delete).toHaveBeenCalledWith(key);
    expect(stored.has(key)).toBe(false);
    expect(seen.map((e) => e.type)).toEqual(['started', 'cancelled']);
  });
});
