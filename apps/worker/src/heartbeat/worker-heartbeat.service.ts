import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { GpuDeviceMonitor, GpuService } from '@app/gpu';
import { WorkerStatusRepository } from '@app/tasks';
import { TaskEvents } from '../runtime/task-events';
import { TaskRunner } from '../runtime/task-runner';

/**
 * Writes this worker's `workers:{id}` record every WORKER_HEARTBEAT_INTERVAL seconds, and at once
 * when a run starts or ends, so that workers/status shows busy/idle and the current task without
 * waiting for the timer.
 */
@Injectable()
export class WorkerHeartbeatService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(WorkerHeartbeatService.name);
  private readonly startedAt = new Date().toISOString();
  private timer?: NodeJS.Timeout;
  /** Beats are written in the order they were taken, so a stale one never lands last. */
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly workers: WorkerStatusRepository,
    private readonly runner: TaskRunner,
    private readonly gpu: GpuService,
    private readonly devices: GpuDeviceMonitor,
    private readonly events: TaskEvents,
    private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    // A run that ends is still in the runner's table while its event fires: leave it out.
    this.events.on((event) => {
      void this.beat(event.type === 'started' ? undefined : event.task.task_id);
    });
    await this.beat();
    this.timer = setInterval(
      () => void this.beat(),
      this.config.worker.heartbeatIntervalSeconds * 1000,
    );
    this.timer.unref();
  }

  /** Takes a snapshot now and writes it after the beats taken before it. */
  beat(endedTaskId?: string): Promise<void> {
    if (this.stopped) return this.chain;
    const running = this.runner.activeTaskIds().filter((id) => id !== endedTaskId);
    const snapshot = {
      worker_id: this.config.worker.id,
      worker_type: this.config.worker.queues.join(','),
      status: running.length > 0 ? ('busy' as const) : ('idle' as const),
      current_task_id: running[0] ?? null,
      current_task_ids: running,
      memory_usage: process.memoryUsage().rss,
      tasks_completed: this.runner.tasksCompleted(),
      last_heartbeat: new Date().toISOString(),
      backend: this.gpu.backendName,
      started_at: this.startedAt,
    };
    this.chain = this.chain.then(async () => {
      try {
        const gpus = await this.devices.devicesOrNone();
        if (this.stopped) return;
        // The seed reports utilisation as a fraction 0..1; 0 where there is no GPU.
        await this.workers.beat({
          ...snapshot,
          gpu_utilization: GpuDeviceMonitor.meanUtilization(gpus),
        });
      } catch (err) {
        this.logger.warn(`heartbeat failed: ${(err as Error).message}`);
      }
    });
    return this.chain;
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.stopped = true;
    await this.chain;
    await this.workers.remove(this.config.worker.id).catch(() => undefined);
  }
}
