import { Logger } from '@nestjs/common';
import type { AppConfig } from '@app/config';
import { GpuDeviceMonitor, type GpuService, type ModelRepository } from '@app/gpu';
import { createRedisClient, groupKey, type RedisClient } from '@app/redis';
import type { TaskRecord } from '@app/tasks';
import { WorkerStatusRepository } from '@app/workers';
import { cleanRedis, testConfig } from '@app/testing';
import { TaskEvents } from '../src/runtime/task-events';
import type { TaskRunner } from '../src/runtime/task-runner';
import {
  EVENT_BEAT_MIN_GAP_MS,
  WorkerHeartbeatService,
} from '../src/heartbeat/worker-heartbeat.service';

const taskOf = (id: string) => ({ task_id: id, project_id: 'p', task_type: 'x' }) as TaskRecord;

/**
 * Event beats against the real Redis (own key prefix), with fake timers so that "at once" and
 * "after the gap" are exact. Redis I/O needs no timers once connected.
 */
describe('WorkerHeartbeatService coalescing (real Redis)', () => {
  let config: AppConfig;
  let redis: RedisClient;
  let repo: WorkerStatusRepository;
  let writes: jest.SpyInstance;
  let service: WorkerHeartbeatService;
  let events: TaskEvents;
  const active: string[] = [];
  let completed = 0;

  const hash = () => redis.hgetall(groupKey(config.redis.prefix, 'workers', 'w-1'));

  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));

  beforeEach(async () => {
    config = testConfig({
      WORKER_ID: 'w-1',
      WORKER_QUEUES: 'gpu_medium',
      // The timer beat stays out of the way of these tests.
      WORKER_HEARTBEAT_INTERVAL: '300',
    });
    redis = createRedisClient(config, 'spec', { commandTimeoutMs: 10_000 });
    await redis.ping();
    repo = new WorkerStatusRepository(redis, config);
    writes = jest.spyOn(repo, 'beat');
    active.length = 0;
    completed = 0;
    const runner = {
      activeTaskIds: () => [...active],
      tasksCompleted: () => completed,
    } as unknown as TaskRunner;
    events = new TaskEvents();
    service = new WorkerHeartbeatService(
      repo,
      runner,
      { backendName: 'wasm' } as GpuService,
      new GpuDeviceMonitor(async () => '', 1000, 0),
      events,
      config,
      { states: () => [], onEvent: () => () => undefined } as unknown as ModelRepository,
    );
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
    await service.onApplicationBootstrap();
    expect(writes).toHaveBeenCalledTimes(1);
    jest.advanceTimersByTime(1000);
  });

  afterEach(async () => {
    await service.onApplicationShutdown();
    jest.useRealTimers();
    await cleanRedis(config);
    redis.disconnect();
  });

  /** One short task: started, then completed while the runner still holds it. */
  function runTask(id: string): void {
    active.push(id);
    events.emit({ type: 'started', task: taskOf(id), attempt: 1, queueWaitMs: 0 });
    completed += 1;
    events.emit({ type: 'completed', task: taskOf(id), attempt: 1, durationMs: 1 });
    active.splice(active.indexOf(id), 1);
  }

  it('writes a lone event at once', async () => {
    active.push('t1');
    events.emit({ type: 'started', task: taskOf('t1'), attempt: 1, queueWaitMs: 0 });
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(2);
    expect(await hash()).toMatchObject({
      status: 'busy',
      current_task_id: 't1',
      current_task_ids: '["t1"]',
    });
    // The next one, a gap later, is written at once too.
    jest.advanceTimersByTime(EVENT_BEAT_MIN_GAP_MS);
    completed = 1;
    events.emit({ type: 'completed', task: taskOf('t1'), attempt: 1, durationMs: 1 });
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(3);
    expect(await hash()).toMatchObject({
      status: 'idle',
      current_task_id: '',
      tasks_completed: '1',
    });
    expect((await repo.list())[0]).toMatchObject({ status: 'idle', current_task_ids: [] });
  });

  it('keeps beating on its timer, and a timer beat never holds back an event', async () => {
    jest.advanceTimersByTime(300_000);
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(2);
    active.push('t1');
    events.emit({ type: 'started', task: taskOf('t1'), attempt: 1, queueWaitMs: 0 });
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(3);
    expect(await hash()).toMatchObject({ status: 'busy', current_task_id: 't1' });
  });

  it('writes a burst as one beat at once and one trailing beat with the final state', async () => {
    runTask('t0');
    await service.flushed();
    // The first event of the burst is written at once: busy with t0.
    expect(writes).toHaveBeenCalledTimes(2);
    expect(await hash()).toMatchObject({ status: 'busy', current_task_id: 't0' });

    for (let i = 1; i < 100; i += 1) runTask(`t${i}`);
    active.push('t100');
    events.emit({ type: 'started', task: taskOf('t100'), attempt: 1, queueWaitMs: 0 });
    jest.advanceTimersByTime(EVENT_BEAT_MIN_GAP_MS - 1);
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(2);

    jest.advanceTimersByTime(1);
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(3);
    expect(await hash()).toMatchObject({
      status: 'busy',
      current_task_id: 't100',
      current_task_ids: '["t100"]',
      tasks_completed: '100',
    });

    // The end of the last task: idle lands with the trailing beat, and nothing after it.
    completed += 1;
    events.emit({ type: 'completed', task: taskOf('t100'), attempt: 1, durationMs: 1 });
    jest.advanceTimersByTime(EVENT_BEAT_MIN_GAP_MS);
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(4);
    expect(await hash()).toMatchObject({
      status: 'idle',
      current_task_id: '',
      current_task_ids: '[]',
      tasks_completed: '101',
    });
    expect(await redis.ttl(groupKey(config.redis.prefix, 'workers', 'w-1'))).toBeGreaterThan(290);
    jest.advanceTimersByTime(10 * EVENT_BEAT_MIN_GAP_MS);
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(4);
  });

  it('leaves a run that ended out of a trailing beat while the runner still holds it', async () => {
    runTask('t0');
    active.push('t1');
    events.emit({ type: 'started', task: taskOf('t1'), attempt: 1, queueWaitMs: 0 });
    events.emit({
      type: 'retry_scheduled',
      task: taskOf('t1'),
      attempt: 1,
      durationMs: 1,
      errorClass: 'network',
      delayMs: 10,
    });
    jest.advanceTimersByTime(EVENT_BEAT_MIN_GAP_MS);
    await service.flushed();
    expect(await hash()).toMatchObject({ status: 'idle', current_task_ids: '[]' });
    // Its retry starts on this worker: busy with it again.
    jest.advanceTimersByTime(EVENT_BEAT_MIN_GAP_MS);
    events.emit({ type: 'started', task: taskOf('t1'), attempt: 2, queueWaitMs: 0 });
    await service.flushed();
    expect(await hash()).toMatchObject({ status: 'busy', current_task_ids: '["t1"]' });
  });

  it('writes nothing after stop, removes the record, and leaves no timer behind', async () => {
    runTask('t0');
    runTask('t1');
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(2);
    expect(jest.getTimerCount()).toBe(2); // the periodic beat and the pending trailing beat

    await service.onApplicationShutdown();
    expect(jest.getTimerCount()).toBe(0);
    expect(await hash()).toEqual({});
    expect(await repo.list()).toEqual([]);

    // Runs still ending while the app closes neither write nor arm a timer.
    runTask('t2');
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(10_000);
    await service.flushed();
    expect(writes).toHaveBeenCalledTimes(2);
    expect(await hash()).toEqual({});
  });
});
