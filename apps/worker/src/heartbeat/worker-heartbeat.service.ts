import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { GpuService } from '@app/gpu';
import { WorkerStatusRepository } from '@app/tasks';
import { TaskRunner } from '../runtime/task-runner';

/** Writes this worker's `workers:{id}` record every WORKER_HEARTBEAT_INTERVAL seconds. */
@Injectable()
export class WorkerHeartbeatService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(WorkerHeartbeatService.name);
  private readonly startedAt = new Date().toISOString();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly workers: WorkerStatusRepository,
    private readonly runner: TaskRunner,
    private readonly gpu: GpuService,
    private readonly config: AppConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.beat();
    this.timer = setInterval(
      () => void this.beat(),
      this.config.worker.heartbeatIntervalSeconds * 1000,
    );
    this.timer.unref();
  }

  async beat(): Promise<void> {
    const running = this.runner.activeTaskIds();
    try {
      await this.workers.beat({
        worker_id: this.config.worker.id,
        worker_type: this.config.worker.queues.join(','),
        status: running.length > 0 ? 'busy' : 'idle',
        current_task_id: running[0] ?? null,
        current_task_ids: running,
        // Without a GPU (or nvidia-smi) there is no utilisation to report.
        gpu_utilization: 0,
        memory_usage: process.memoryUsage().rss,
        tasks_completed: this.runner.tasksCompleted(),
        last_heartbeat: new Date().toISOString(),
        backend: this.gpu.backendName,
        started_at: this.startedAt,
      });
    } catch (err) {
      this.logger.warn(`heartbeat failed: ${(err as Error).message}`);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.workers.remove(this.config.worker.id).catch(() => undefined);
  }
}
