import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { GpuDeviceMonitor, type GpuService, type ModelRepository } from '@app/gpu';
import type { TaskRecord } from '@app/tasks';
import type { WorkerBeat, WorkerStatusRepository } from '@app/workers';
import { TaskEvents } from '../runtime/task-events';
import type { TaskRunner } from '../runtime/task-runner';
import {
  EVENT_BEAT_MIN_GAP_MS,
  WorkerHeartbeatService,
  workerStatusOf,
} from './worker-heartbeat.service';

const task = { task_id: 't1', project_id: 'p', task_type: 'x' } as TaskRecord;

function setup(smi: () => Promise<string>, env: Record<string, string> = {}) {
  const beats: WorkerBeat[] = [];
  const repo = {
    beat: async (r: WorkerBeat) => void beats.push(r),
    remove: async () => undefined,
  } as unknown as WorkerStatusRepository;
  const active: string[] = [];
  const runner = {
    activeTaskIds: () => [...active],
    tasksCompleted: () => 3,
  } as unknown as TaskRunner;
  const gpu = { backendName: 'wasm' } as GpuService;
  const events = new TaskEvents();
  const config = AppConfig.fromEnv({
    API_KEYS: 'k',
    WORKER_ID: 'w-1',
    WORKER_QUEUES: 'gpu_medium',
    WORKER_HEARTBEAT_INTERVAL: '300',
    ...env,
  });
  const service = new WorkerHeartbeatService(
    repo,
    runner,
    gpu,
    new GpuDeviceMonitor(smi, 1000, 0),
    events,
    config,
    { states: () => [], onEvent: () => () => undefined } as unknown as ModelRepository,
  );
  return { service, beats, active, events };
}

describe('WorkerHeartbeatService', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));

  it('beats when a run starts and ends, busy with its task then idle', async () => {
    const { service, beats, active, events } = setup(
      async () => '0, L4, 1, 2, 50\n1, L4, 1, 2, 30\n',
    );
    await service.onApplicationBootstrap();
    expect(beats[0]).toMatchObject({
      status: 'idle',
      current_task_id: null,
      worker_type: ['gpu_medium'],
      heartbeat_interval: 300,
    });
    // Past the least gap between beats: the start is written at once.
    await new Promise((r) => setTimeout(r, EVENT_BEAT_MIN_GAP_MS + 20));

    active.push('t1');
    events.emit({ type: 'started', task, attempt: 1, queueWaitMs: 0 });
    await service.flushed();
    expect(beats).toHaveLength(2);
    // The runner still holds the run while it reports the end: the trailing beat leaves it out.
    events.emit({ type: 'completed', task, attempt: 1, durationMs: 5 });
    await new Promise((r) => setTimeout(r, EVENT_BEAT_MIN_GAP_MS + 20));
    await service.flushed();
    expect(beats.slice(1)).toEqual([
      expect.objectContaining({ status: 'busy', current_task_id: 't1', current_task_ids: ['t1'] }),
      expect.objectContaining({ status: 'idle', current_task_id: null, current_task_ids: [] }),
    ]);
    expect(beats[1]).toMatchObject({
      worker_id: 'w-1',
      gpu_utilization: 0.4,
      tasks_completed: 3,
      backend: 'wasm',
      device: 'cpu',
      memory_usage: expect.any(Number),
      gpus: [
        expect.objectContaining({ gpu_id: '0', name: 'L4', utilization_percent: 50 }),
        expect.objectContaining({ gpu_id: '1', memory_total_bytes: 2 * 1024 * 1024 }),
      ],
    });
    expect(beats[1].memory_usage).toBeGreaterThan(0);
    await service.onApplicationShutdown();
  });

  it('writes beats in the order they were taken, even when reading the GPU is slow', async () => {
    let calls = 0;
    const { service, beats, active } = setup(async () => {
      // The first reading is slow, later ones are quick.
      calls += 1;
      if (calls === 1) await new Promise((r) => setTimeout(r, 100));
      return '';
    });
    active.push('t1');
    const first = service.beat();
    active.length = 0;
    const second = service.beat();
    await Promise.all([first, second]);
    expect(beats.map((b) => b.status)).toEqual(['busy', 'idle']);
    await service.onApplicationShutdown();
  });

  it('says idle, active or busy from the tasks it runs against the slots of its queues', async () => {
    expect([0, 1, 2, 3, 4].map((n) => workerStatusOf(n, 3))).toEqual([
      'idle',
      'active',
      'active',
      'busy',
      'busy',
    ]);
    // gpu_medium (1 slot) + cpu_intensive (2 slots): one task leaves room, three fill it.
    const { service, beats, active } = setup(async () => '', {
      WORKER_QUEUES: 'gpu_medium,cpu_intensive',
    });
    active.push('t1');
    await service.beat();
    active.push('t2', 't3');
    await service.beat();
    expect(beats.map((b) => [b.status, b.worker_type])).toEqual([
      ['active', ['gpu_medium', 'cpu_intensive']],
      ['busy', ['gpu_medium', 'cpu_intensive']],
    ]);
    await service.onApplicationShutdown();
  });
});
