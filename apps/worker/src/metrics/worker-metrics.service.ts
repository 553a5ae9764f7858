import { Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { AppConfig } from '@app/config';
import {
  GpuDeviceMonitor,
  GpuService,
  ModelRepository,
  type GpuDeviceStats,
  type ModelEvent,
} from '@app/gpu';
import { AppMetricsRegistry } from '@app/observability';
import { WebhookDeliveryEvents } from '@app/webhooks';
import { Counter, Gauge, Histogram } from 'prom-client';
import { TaskEvents, type TaskEvent } from '../runtime/task-events';
import { TaskRunner } from '../runtime/task-runner';
import { SafetyCheck } from '../safety/safety.check';
import { ProjectLabelLimiter } from './project-label.limiter';

/** Outcomes of a webhook delivery attempt (from @app/webhooks' WebhookDeliveryEvents). */
export type WebhookOutcome = 'delivered' | 'failed' | 'retrying';

/**
 * The worker's Prometheus series, in a registry of its own, fed by TaskEvents (never by the
 * runner itself) and, for gauges, read when Prometheus scrapes.
 */
@Injectable()
export class WorkerMetrics implements OnModuleInit {
  readonly registry = new AppMetricsRegistry('worker');
  private readonly projects: ProjectLabelLimiter;

  /** The seed's counter; status is how a run ended: completed, failed, retried or cancelled. */
  readonly tasks = new Counter({
    name: 'tasks_total',
    help: 'Task runs by project, type and outcome (completed, failed, retried, cancelled)',
    labelNames: ['project_id', 'task_type', 'status'],
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'task_duration_seconds',
    help: 'Run time of task runs that ended on their own (not cancelled), seconds',
    labelNames: ['project_id', 'task_type'],
    buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600],
    registers: [this.registry],
  });
  readonly queueWait = new Histogram({
    name: 'task_queue_wait_seconds',
    help: 'Time from enqueue (or retry) to the start of a run, seconds',
    labelNames: ['task_type'],
    buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [this.registry],
  });
  readonly attempts = new Counter({
    name: 'task_attempts_total',
    help: 'Runs started, by task type (a retry is a new attempt)',
    labelNames: ['task_type'],
    registers: [this.registry],
  });
  readonly attemptErrors = new Counter({
    name: 'task_attempt_errors_total',
    help: 'Failed attempts by error class, and whether they were retried or failed the task',
    labelNames: ['task_type', 'error_class', 'outcome'],
    registers: [this.registry],
  });
  readonly webhooks = new Counter({
    name: 'webhook_deliveries_total',
    help: 'Webhook deliveries by outcome (delivered, failed, retrying)',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly modelLoad = new Histogram({
    name: 'model_load_seconds',
    help: 'Time to load a model version into backend memory (before its warm-up), seconds',
    labelNames: ['model', 'version', 'backend'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120],
    registers: [this.registry],
  });
  readonly modelWarmup = new Histogram({
    name: 'model_warmup_seconds',
    help: 'Time of the warm-up inference after a model load, seconds',
    labelNames: ['model', 'version', 'backend'],
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly modelInference = new Histogram({
    name: 'model_inference_seconds',
    help: 'Time of one model call (a tile, a batch, an image) including reading its output, seconds',
    labelNames: ['model'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  /** Images classified for `safety_check` tasks (the output, or an input), and whether they blocked. */
  readonly safetyChecks = new Counter({
    name: 'safety_checks_total',
    help: 'Images classified by the safety check, by target (output, input) and outcome (passed, blocked)',
    labelNames: ['task_type', 'target', 'outcome'],
    registers: [this.registry],
  });
  /** The seed's gauge: this process's resident memory when a run of the project ended. */
  readonly memory = new Gauge({
    name: 'memory_usage_bytes',
    help: 'Resident memory of the worker when the last run of the project ended, bytes',
    labelNames: ['project_id'],
    registers: [this.registry],
  });

  constructor(
    private readonly events: TaskEvents,
    gpu: GpuService,
    devices: GpuDeviceMonitor,
    runner: TaskRunner,
    config: AppConfig,
    @Optional() private readonly webhookEvents?: WebhookDeliveryEvents,
    @Optional() private readonly models?: ModelRepository,
    @Optional() private readonly safety?: SafetyCheck,
  ) {
    this.projects = new ProjectLabelLimiter(config.ops.projectLabelLimit);
    new Gauge({
      name: 'worker_active_tasks',
      help: 'Runs in progress on this worker',
      registers: [this.registry],
      collect() {
        this.set(runner.activeTaskIds().length);
      },
    });
    const gpuGauge = (name: string, help: string, read: (d: GpuDeviceStats) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['gpu_id'],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const d of await devices.devicesOrNone()) this.set({ gpu_id: d.index }, read(d));
        },
      });
    gpuGauge(
      'gpu_utilization_percent',
      'GPU utilization (nvidia-smi), percent',
      (d) => d.utilizationPercent,
    );
    gpuGauge(
      'gpu_memory_used_bytes',
      'GPU memory in use (nvidia-smi), bytes',
      (d) => d.memoryUsedBytes,
    );
    gpuGauge('gpu_memory_total_bytes', 'GPU memory (nvidia-smi), bytes', (d) => d.memoryTotalBytes);
    const tfjs = (
      name: string,
      help: string,
      read: (m: ReturnType<GpuService['memory']>) => number,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['backend'],
        registers: [this.registry],
        collect() {
          this.reset();
          let backend: string;
          try {
            backend = gpu.backendName;
          } catch {
            return; // still starting: no series rather than a wrong zero
          }
          this.set({ backend }, read(gpu.memory()));
        },
      });
    tfjs('tfjs_tensors', 'Live tfjs tensors', (m) => m.numTensors);
    tfjs('tfjs_tensor_bytes', 'Bytes held by live tfjs tensors', (m) => m.numBytes);
    tfjs(
      'tfjs_wasm_heap_bytes',
      'Size of the tfjs wasm heap (wasm backend)',
      (m) => m.wasmHeapBytes ?? 0,
    );
  }

  onModuleInit(): void {
    this.events.on((event) => this.record(event));
    this.webhookEvents?.on((event) => this.recordWebhookDelivery(event.outcome));
    // Not a TaskEvent: their listeners read every event but `started` as the end of a run.
    this.safety?.onCheck((e) =>
      this.safetyChecks.inc({
        task_type: e.taskType,
        target: e.target,
        outcome: e.blocked ? 'blocked' : 'passed',
      }),
    );
    this.models?.onEvent((event) => this.recordModel(event));
  }

  private recordModel(event: ModelEvent): void {
    if (event.type === 'inference') {
      this.modelInference.observe({ model: event.model }, event.seconds);
      return;
    }
    const labels = { model: event.model, version: event.version, backend: event.backend };
    this.modelLoad.observe(labels, event.seconds);
    this.modelWarmup.observe(labels, event.warmupSeconds);
  }

  recordWebhookDelivery(outcome: WebhookOutcome): void {
    this.webhooks.inc({ outcome });
  }

  /** Prometheus text format of every series of this worker. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  private record(event: TaskEvent): void {
    const { task } = event;
    const type = task.task_type;
    if (event.type === 'started') {
      this.attempts.inc({ task_type: type });
      this.queueWait.observe({ task_type: type }, event.queueWaitMs / 1000);
      return;
    }
    const project = this.projects.label(task.project_id);
    this.memory.set({ project_id: project }, process.memoryUsage.rss());
    const status = STATUS[event.type];
    this.tasks.inc({ project_id: project, task_type: type, status });
    if (event.type !== 'cancelled') {
      this.duration.observe({ project_id: project, task_type: type }, event.durationMs / 1000);
    }
    if (event.type === 'failed' || event.type === 'retry_scheduled') {
      this.attemptErrors.inc({
        task_type: type,
        error_class: event.errorClass,
        outcome: event.type === 'failed' ? 'failed' : 'retried',
      });
    }
  }
}

const STATUS: Record<Exclude<TaskEvent['type'], 'started'>, string> = {
  completed: 'completed',
  failed: 'failed',
  retry_scheduled: 'retried',
  cancelled: 'cancelled',
};
