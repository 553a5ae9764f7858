import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { Queue } from 'bullmq';
import { REDIS_CLIENT, type RedisClient } from '@app/redis';
import { QueueName, toBullPriority, type TaskPriority } from '../queues';
import { QUEUE_FULL_RETRY_AFTER_SECONDS } from '../records/task.repository';
import { withTaskScripts, type TaskScriptsRedis } from '../records/task-scripts.redis';
import { QueueFullError } from '../task-errors';

/** What a job carries: the record in Redis holds everything else. */
export interface TaskJobData {
  task_id: string;
  project_id: string;
}

/**
 * The BullMQ prefix of a queue: `<REDIS_PREFIX>:bull:{<queue>}`. The hash tag puts all of one
 * queue's keys in one Redis Cluster slot (BullMQ's scripts need that; it is its documented way),
 * and different queues in different slots.
 */
export function bullPrefix(redisPrefix: string, queue: string): string {
  return `${redisPrefix}:bull:{${queue}}`;
}

const ERROR_LOG_INTERVAL_MS = 10_000;

/** The queue producer: adds, removes and locates jobs. The worker consumes. */
@Injectable()
export class TaskQueueService {
  private readonly logger = new Logger(TaskQueueService.name);
  private readonly queues: Record<QueueName, Queue<TaskJobData>>;
  private readonly redis: TaskScriptsRedis;

  constructor(
    @InjectQueue(QueueName.GpuHeavy) heavy: Queue<TaskJobData>,
    @InjectQueue(QueueName.GpuMedium) medium: Queue<TaskJobData>,
    @InjectQueue(QueueName.CpuIntensive) cpu: Queue<TaskJobData>,
    private readonly config: AppConfig,
    @Inject(REDIS_CLIENT) redis: RedisClient,
  ) {
    this.redis = withTaskScripts(redis);
    this.queues = {
      [QueueName.GpuHeavy]: heavy,
      [QueueName.GpuMedium]: medium,
      [QueueName.CpuIntensive]: cpu,
    };
    // Without a listener BullMQ prints connection errors to the console, once per retry; they are
    // logged here instead, at most once per queue every ERROR_LOG_INTERVAL_MS (readiness reports
    // the outage itself).
    for (const [name, queue] of Object.entries(this.queues)) {
      let lastLogged = 0;
      queue.on('error', (err: Error) => {
        const now = Date.now();
        if (now - lastLogged < ERROR_LOG_INTERVAL_MS) return;
        lastLogged = now;
        this.logger.warn(`queue ${name}: ${err.message}`);
      });
    }
  }

  queue(name: QueueName): Queue<TaskJobData> {
    return this.queues[name];
  }

  /** `<task id>` for the first submission, `<task id>_r<n>` after the n-th manual retry. */
  static jobId(taskId: string, retries: number): string {
    return retries === 0 ? taskId : `${taskId}_r${retries}`;
  }

  async enqueue(
    queue: QueueName,
    taskType: string,
    data: TaskJobData,
    jobId: string,
    priority: TaskPriority,
  ): Promise<void> {
    await this.queues[queue].add(taskType, data, {
      jobId,
      priority: toBullPriority(priority),
      // Retries, their delays and time limits are the runner's: BullMQ runs each job once.
      attempts: 1,
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    });
  }

  /** A BullMQ key of the queue (its wait list, prioritized set…). */
  key(queue: QueueName, part: string): string {
    return `${bullPrefix(this.config.redis.prefix, queue)}:${queue}:${part}`;
  }

  /**
   * Before a task is created or retried: refuses (QueueFullError) when the queue's waiting jobs
   * (wait + prioritized + delayed) already reach QUEUE_MAX_SIZE, else answers the queue position
   * a job of that priority will have once added (QUEUE_SNAPSHOT, one step in the queue's slot).
   * Two submits racing may both count the other's job as not yet added.
   */
  async reserve(queue: QueueName, priority: TaskPriority): Promise<number> {
    try {
      return Number(
        await this.redis.taskQueueSnapshot(
          this.key(queue, 'wait'),
          this.key(queue, 'prioritized'),
          this.key(queue, 'delayed'),
          toBullPriority(priority),
          this.config.tasks.queueMaxSize,
        ),
      );
    } catch (err) {
      if (/\bQUEUE_FULL\b/.test((err as Error).message ?? '')) {
        throw new QueueFullError(queue, QUEUE_FULL_RETRY_AFTER_SECONDS);
      }
      throw err;
    }
  }

  /**
   * The job's BullMQ state (`unknown` when there is no such job) and, for a failed one, why.
   * One read for the reconciler.
   */
  async inspect(
    queue: QueueName,
    jobId: string,
  ): Promise<{ state: string; failedReason?: string }> {
    const job = await this.queues[queue].getJob(jobId);
    if (!job) return { state: 'unknown' };
    const state = await job.getState();
    return state === 'failed' ? { state, failedReason: job.failedReason } : { state };
  }

  /**
   * Adds the job again for a record that is queued but whose job is missing or ended (its
   * completed or failed job, if any, is removed first so the id is free).
   */
  async replace(
    queue: QueueName,
    taskType: string,
    data: TaskJobData,
    jobId: string,
    priority: TaskPriority,
  ): Promise<void> {
    await this.queues[queue].remove(jobId);
    await this.enqueue(queue, taskType, data, jobId, priority);
  }

  /** Removes a job that has not started; a job a worker holds stays (the worker sees the cancel). */
  async remove(queue: QueueName, jobId: string): Promise<boolean> {
    try {
      return (await this.queues[queue].remove(jobId)) === 1;
    } catch (err) {
      this.logger.debug(`job ${jobId} not removed: ${(err as Error).message}`);
      return false;
    }
  }
}
