import { AppConfig } from '@app/config';
import type { GpuDeviceMonitor, GpuService } from '@app/gpu';
import type { TaskRecord } from '@app/tasks';
import { TaskEvents } from '../runtime/task-events';
import type { TaskRunner } from '../runtime/task-runner';
import { OTHER_PROJECTS, ProjectLabelLimiter } from './project-label.limiter';
import { WorkerMetrics } from './worker-metrics.service';

function task(project_id: string, task_type = 'generate_image'): TaskRecord {
  return { task_id: `t-${project_id}`, project_id, task_type } as TaskRecord;
}

function setup(limit = '2') {
  const events = new TaskEvents();
  const gpu = {
    get backendName() {
      return 'wasm';
    },
    memory: () => ({ numTensors: 7, numBytes: 4096, wasmHeapBytes: 1 << 20 }),
  } as unknown as GpuService;
  const devices = {
    devicesOrNone: async () => [
      {
        index: '0',
        name: 'L4',
        memoryUsedBytes: 10,
        memoryTotalBytes: 100,
        utilizationPercent: 42,
      },
    ],
  } as unknown as GpuDeviceMonitor;
  const runner = { activeTaskIds: () => ['a', 'b'] } as unknown as TaskRunner;
  const config = AppConfig.fromEnv({ API_KEYS: 'k', METRICS_PROJECT_LABEL_LIMIT: limit });
  const metrics = new WorkerMetrics(events, gpu, devices, runner, config);
  metrics.onModuleInit();
  return { events, metrics };
}

describe('ProjectLabelLimiter', () => {
  it('keeps the first N distinct projects and counts the rest as other', () => {
    const limiter = new ProjectLabelLimiter(2);
    expect(['p1', 'p2', 'p1', 'p3', 'p2', 'p4'].map((p) => limiter.label(p))).toEqual([
      'p1',
      'p2',
      'p1',
      OTHER_PROJECTS,
      'p2',
      OTHER_PROJECTS,
    ]);
  });
});

describe('WorkerMetrics', () => {
  it('records runs from task events: outcome counter, duration, queue wait, attempts, errors', async () => {
    const { events, metrics } = setup();
    events.emit({ type: 'started', task: task('p1'), attempt: 1, queueWaitMs: 1500 });
    events.emit({ type: 'completed', task: task('p1'), attempt: 1, durationMs: 2500 });
    events.emit({ type: 'started', task: task('p2'), attempt: 1, queueWaitMs: 10 });
    events.emit({
      type: 'retry_scheduled',
      task: task('p2'),
      attempt: 1,
      durationMs: 100,
      errorClass: 'network',
      delayMs: 30_000,
    });
    events.emit({
      type: 'failed',
      task: task('p2'),
      attempt: 2,
      durationMs: 200,
      errorClass: 'validation',
    });
    events.emit({ type: 'cancelled', task: task('p1'), attempt: 1, durationMs: 50 });

    const text = await metrics.scrape();
    /** The sample line of `name` whose labels include `labels` (in any order). */
    const line = (name: string, labels: Record<string, string>) =>
      text
        .split('\n')
        .find(
          (l) =>
            l.startsWith(`${name}{`) &&
            Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
        );
    const gi = 'generate_image';
    expect(line('tasks_total', { project_id: 'p1', task_type: gi, status: 'completed' })).toMatch(
      / 1$/,
    );
    expect(line('tasks_total', { project_id: 'p2', task_type: gi, status: 'retried' })).toMatch(
      / 1$/,
    );
    expect(line('tasks_total', { project_id: 'p2', task_type: gi, status: 'failed' })).toMatch(
      / 1$/,
    );
    expect(line('tasks_total', { project_id: 'p1', task_type: gi, status: 'cancelled' })).toMatch(
      / 1$/,
    );
    // Cancelled runs do not count as durations.
    expect(line('task_duration_seconds_count', { project_id: 'p1' })).toMatch(/ 1$/);
    expect(line('task_duration_seconds_sum', { project_id: 'p1' })).toMatch(/ 2\.5$/);
    expect(line('task_queue_wait_seconds_sum', { task_type: gi })).toMatch(/ 1\.51$/);
    expect(line('task_attempts_total', { task_type: gi })).toMatch(/ 2$/);
    expect(
      line('task_attempt_errors_total', {
        task_type: gi,
        error_class: 'network',
        outcome: 'retried',
      }),
    ).toMatch(/ 1$/);
    expect(
      line('task_attempt_errors_total', {
        task_type: gi,
        error_class: 'validation',
        outcome: 'failed',
      }),
    ).toMatch(/ 1$/);
    expect(line('memory_usage_bytes', { project_id: 'p1' })).toMatch(/ \d{6,}$/);
  });

  it('caps the project_id label at METRICS_PROJECT_LABEL_LIMIT', async () => {
    const { events, metrics } = setup('1');
    for (const p of ['first', 'second', 'third']) {
      events.emit({ type: 'completed', task: task(p), attempt: 1, durationMs: 1 });
    }
    const text = await metrics.scrape();
    expect(text).toContain(
      'tasks_total{project_id="first",task_type="generate_image",status="completed",app="worker"} 1',
    );
    expect(text).toContain(
      'tasks_total{project_id="other",task_type="generate_image",status="completed",app="worker"} 2',
    );
    expect(text).not.toContain('project_id="second"');
  });

  it('reads GPU, tfjs, active runs and webhooks when scraped', async () => {
    const { metrics } = setup();
    metrics.recordWebhookDelivery('delivered');
    const text = await metrics.scrape();
    expect(text).toContain('gpu_utilization_percent{gpu_id="0",app="worker"} 42');
    expect(text).toContain('gpu_memory_total_bytes{gpu_id="0",app="worker"} 100');
    expect(text).toContain('tfjs_tensors{backend="wasm",app="worker"} 7');
    expect(text).toContain('tfjs_tensor_bytes{backend="wasm",app="worker"} 4096');
    expect(text).toContain('worker_active_tasks{app="worker"} 2');
    expect(text).toContain('webhook_deliveries_total{outcome="delivered",app="worker"} 1');
    expect(text).toContain('process_resident_memory_bytes');
  });

  it('keeps two workers in one process apart (a registry each)', async () => {
    const a = setup();
    const b = setup();
    a.events.emit({ type: 'completed', task: task('p1'), attempt: 1, durationMs: 1 });
    expect(await a.metrics.scrape()).toContain('status="completed",app="worker"} 1');
    expect(await b.metrics.scrape()).not.toContain('status="completed"');
  });
});
