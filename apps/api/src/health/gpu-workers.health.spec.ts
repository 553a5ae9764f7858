import { HealthIndicatorService } from '@nestjs/terminus';
import type { WorkerStatusRecord, WorkerStatusRepository } from '@app/workers';
import { GpuWorkersHealthIndicator } from './gpu-workers.health';
import { WorkersHealthIndicator } from './workers.health';

const GiB = 2 ** 30;

const worker = (over: Partial<WorkerStatusRecord> = {}): WorkerStatusRecord => ({
  worker_id: 'w',
  worker_type: ['gpu_heavy'],
  status: 'idle',
  current_task_id: null,
  current_task_ids: [],
  gpu_utilization: 0,
  memory_usage: 1,
  tasks_completed: 0,
  last_heartbeat: new Date().toISOString(),
  backend: 'wasm',
  device: 'cpu',
  gpus: [],
  models: [],
  heartbeat_interval: 10,
  started_at: new Date().toISOString(),
  ...over,
});

const l4 = (id: string, used: number) => ({
  gpu_id: id,
  name: 'NVIDIA L4',
  memory_used_bytes: used * GiB,
  memory_total_bytes: 24 * GiB,
  utilization_percent: 50,
});

const repo = (list: () => Promise<WorkerStatusRecord[]>) =>
  ({ list }) as unknown as WorkerStatusRepository;

const gpuOf = (list: () => Promise<WorkerStatusRecord[]>) =>
  new GpuWorkersHealthIndicator(repo(list), new HealthIndicatorService()).check('gpu', 200);
const workersOf = (list: () => Promise<WorkerStatusRecord[]>) =>
  new WorkersHealthIndicator(repo(list), new HealthIndicatorService()).check('workers', 200);

describe('GpuWorkersHealthIndicator (the API’s gpu)', () => {
  it('says none, up, with no worker or only CPU workers (tfjs-node included)', async () => {
    expect((await gpuOf(async () => [])).gpu).toEqual({
      status: 'up',
      gpu: 'none',
      gpu_workers: 0,
      message: 'no worker is running',
    });
    // tfjs-node reports backend 'tensorflow' too, on the CPU: no GPU.
    const cpu = await gpuOf(async () => [
      worker({ worker_id: 'a', backend: 'tensorflow' }),
      worker({ worker_id: 'b', backend: 'wasm' }),
    ]);
    expect(cpu.gpu).toMatchObject({
      status: 'up',
      gpu: 'none',
      gpu_workers: 0,
      message: 'no worker runs on a GPU (backends: tensorflow, wasm)',
    });
  });

  it('counts the GPU workers not offline, their GPUs and memory', async () => {
    const result = await gpuOf(async () => [
      worker({
        worker_id: 'g1',
        backend: 'tensorflow',
        device: 'gpu',
        status: 'busy',
        gpu_utilization: 0.5,
        gpus: [l4('0', 4), l4('1', 2)],
      }),
      worker({ worker_id: 'g2', backend: 'tensorflow', device: 'gpu', gpus: [l4('0', 1)] }),
      worker({ worker_id: 'dead', backend: 'tensorflow', device: 'gpu', status: 'offline' }),
      worker({ worker_id: 'c', backend: 'wasm' }),
    ]);
    expect(result.gpu).toMatchObject({
      status: 'up',
      gpu: 'available',
      gpu_workers: 2,
      gpus: 3,
      memory_used_bytes: 7 * GiB,
      memory_total_bytes: 72 * GiB,
      workers: [
        { worker_id: 'g1', status: 'busy', gpu_utilization: 0.5, gpus: [l4('0', 4), l4('1', 2)] },
        { worker_id: 'g2', status: 'idle', gpus: [l4('0', 1)] },
      ],
    });
  });

  it('is down when the heartbeats cannot be read', async () => {
    const result = await gpuOf(async () => Promise.reject(new Error('connection reconnecting')));
    expect(result.gpu).toEqual({
      status: 'down',
      message: 'worker heartbeats unreadable: connection reconnecting',
    });
  });
});

describe('WorkersHealthIndicator', () => {
  it('sets gpu only for a worker on a CUDA device, and counts each status', async () => {
    const cpu = await workersOf(async () => [
      worker({ worker_id: 'a', backend: 'tensorflow', status: 'busy' }),
      worker({ worker_id: 'b', status: 'offline', device: 'gpu', backend: 'tensorflow' }),
    ]);
    expect(cpu.workers).toEqual({
      status: 'up',
      count: 2,
      idle: 0,
      active: 0,
      busy: 1,
      offline: 1,
      backends: ['tensorflow'],
      gpu: false,
    });
    const gpu = await workersOf(async () => [worker({ device: 'gpu', backend: 'tensorflow' })]);
    expect(gpu.workers).toMatchObject({ gpu: true, idle: 1 });
  });

  it('is down, saying why, when the heartbeats cannot be read or take too long', async () => {
    const slow = await workersOf(() => new Promise(() => undefined));
    expect(slow.workers.status).toBe('down');
    expect((slow.workers as { message?: string }).message).toMatch(/^worker heartbeats unreadable/);
  });
});
