import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { GpuDeviceMonitor, GpuService, ModelRepository } from '@app/gpu';
import { WorkerStatusRepository, type WorkerBeat } from '@app/workers';
import { type TaskEvent, TaskEvents } from '../runtime/task-events';
import { TaskRunner } from '../runtime/task-runner';

/**
 * Least time between two beats that runs starting or ending ask for. A run longer than this has
 * its start and its end written at once; only runs shorter than this (the case where
 * beats cost most: hundreds of tasks a second) are merged, at most 10 beats a second instead of
 * two per task, with a trailing beat that lands the final state (idle after the last task) at
 * most this long after the last event: workers/status is never more than this behind.
 */
export const EVENT_BEAT_MIN_GAP_MS = 100;

/**
 * What a worker says of itself (seed 001): `busy` when every slot it has runs a task (a worker of
 * one slot is busy with its one task), `active` when some do, `idle` when none does.
 */
export function workerStatusOf(running: number, slots: number): WorkerBeat['status'] {
  if (running === 0) return 'idle';
  return running >= slots ? 'busy' : 'active';
}

/**
 * Writes this worker's `workers:{id}` record every WORKER_HEARTBEAT_INTERVAL seconds, and soon
 * when a run starts or ends (at once, or EVENT_BEAT_MIN_GAP_MS after the previous such beat),
 * so that workers/status shows busy/idle and the current task without waiting for the timer.
 */
@Injectable()
export class WorkerHeartbeatService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(WorkerHeartbeatService.name);
  private readonly startedAt = new Date().toISOString();
  private timer?: NodeJS.Timeout;
  /** Beats are written in the order they were taken, so a stale one never lands last. */
  private chain: Promise<void> = Promise.resolve();
  private stopped = false;
  /** When the last beat asked for by a run's start or end was taken (Date.now()). */
  private lastEventBeatAt = -Infinity;
  /** A run started or ended since the last beat was taken. */
  private dirty = false;
  /** The trailing beat of a burst of events. */
  private trailing?: NodeJS.Timeout;
  /**
   * Runs that reported their end while the runner may still hold them in its table: left out of
   * every beat until they leave the table or start again (a retry on this worker).
   */
  private readonly ended = new Set<string>();

  constructor(
    private readonly workers: WorkerStatusRepository,
    private readonly runner: TaskRunner,
    private readonly gpu: GpuService,
    private readonly devices: GpuDeviceMonitor,
    private readonly events: TaskEvents,
    private readonly config: AppConfig,
    private readonly models: ModelRepository,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.events.on((event) => this.onTaskEvent(event));
    // A model that finished loading (or failed) shows in workers/status at once.
    this.models.onEvent((event) => {
      if (event.type === 'load' && !this.stopped) void this.beat();
    });
    await this.beat();
    this.timer = setInterval(
      () => void this.beat(),
      this.config.worker.heartbeatIntervalSeconds * 1000,
    );
    this.timer.unref();
  }

  /**
   * Beats at once if the last event beat is EVENT_BEAT_MIN_GAP_MS old, else once that gap is over.
   * Timer beats (one per interval) do not count: they never hold back a run's start or end.
   */
  private onTaskEvent(event: TaskEvent): void {
    // A run that ends is still in the runner's table while its event fires: leave it out.
    if (event.type === 'started') this.ended.delete(event.task.task_id);
    else this.ended.add(event.task.task_id);
    if (this.stopped) return;
    this.dirty = true;
    if (this.trailing) return;
    // Clamped: a wall clock set back never holds the trailing beat longer than the gap.
    const wait = Math.min(
      this.lastEventBeatAt + EVENT_BEAT_MIN_GAP_MS - Date.now(),
      EVENT_BEAT_MIN_GAP_MS,
    );
    if (wait <= 0) {
      this.eventBeat();
      return;
    }
    this.trailing = setTimeout(() => {
      this.trailing = undefined;
      // A timer beat taken meanwhile already carries the latest state.
      if (this.dirty) this.eventBeat();
    }, wait);
    this.trailing.unref();
  }

  private eventBeat(): void {
    this.lastEventBeatAt = Date.now();
    void this.beat();
  }

  /** Takes a snapshot now and writes it after the beats taken before it. */
  beat(): Promise<void> {
    if (this.stopped) return this.chain;
    this.dirty = false;
    const now = Date.now();
    const inTable = this.runner.activeTaskIds();
    for (const id of this.ended) if (!inTable.includes(id)) this.ended.delete(id);
    const running = inTable.filter((id) => !this.ended.has(id));
    const { queues, concurrency, id, heartbeatIntervalSeconds } = this.config.worker;
    const snapshot = {
      worker_id: id,
      worker_type: [...queues],
      status: workerStatusOf(
        running.length,
        queues.reduce((slots, q) => slots + concurrency[q], 0),
      ),
      current_task_id: running[0] ?? null,
      current_task_ids: running,
      memory_usage: process.memoryUsage.rss(),
      tasks_completed: this.runner.tasksCompleted(),
      last_heartbeat: new Date(now).toISOString(),
      backend: this.gpu.backendName,
      device: this.gpu.usesGpu ? ('gpu' as const) : ('cpu' as const),
      heartbeat_interval: heartbeatIntervalSeconds,
      started_at: this.startedAt,
      models: this.models.states(),
    };
    this.chain = this.chain.then(async () => {
      try {
        const gpus = await this.devices.devicesOrNone();
        if (this.stopped) return;
        // The seed reports utilisation as a fraction 0..1; 0 where there is no GPU.
        await this.workers.beat({
          ...snapshot,
          gpu_utilization: GpuDeviceMonitor.meanUtilization(gpus),
          gpus: gpus.map((g) => ({
            gpu_id: g.index,
            name: g.name,
            memory_used_bytes: g.memoryUsedBytes,
            memory_total_bytes: g.memoryTotalBytes,
            utilization_percent: g.utilizationPercent,
          })),
        });
      } catch (err) {
        this.logger.warn({ msg: 'heartbeat failed', worker_id: id, error: (err as Error).message });
      }
    });
    return this.chain;
  }

  /** Resolves once every beat taken so far is written (or has failed and been logged). */
  flushed(): Promise<void> {
    return this.chain;
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    clearTimeout(this.trailing);
    this.trailing = undefined;
    this.stopped = true;
    await this.chain;
    await this.workers.remove(this.config.worker.id).catch(() => undefined);
  }
}
