import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { REDIS_CLIENT, redisKey, type RedisClient } from '@app/redis';
import { toBullPriority, type QueueName, type TaskPriority } from '../queues';
import { parseTaskHash, type TaskRecord } from './task.record';
import { WEBHOOK_OUTBOX_PARTS } from './task.scripts';
import { withTaskScripts, type TaskScriptsRedis } from './task-scripts.redis';
import type { TaskStatus } from './task-status';
import { QueueFullError } from '../task-errors';

export interface NewTask {
  task_id: string;
  project_id: string;
  task_type: string;
  priority: TaskPriority;
  task_data: Record<string, unknown>;
  callback_url?: string | null;
  metadata?: Record<string, unknown> | null;
  estimated_duration: number;
  queue: QueueName;
  job_id: string;
  created_at: Date;
}

/** BullMQ keys of a queue's waiting jobs, and the most it may hold (QUEUE_MAX_SIZE). */
export interface QueueBacklog {
  queue: QueueName;
  keys: [wait: string, prioritized: string, delayed: string];
  max: number;
}

export interface QueuePositionKeys {
  wait: string;
  prioritized: string;
}

/** Seconds a client is told to wait when a queue is full. */
export const QUEUE_FULL_RETRY_AFTER_SECONDS = 30;

export interface TaskListQuery {
  status?: TaskStatus;
  task_type?: string;
  page: number;
  limit: number;
}

export interface TaskPage {
  tasks: TaskRecord[];
  total: number;
}

/** Where a submit's Idempotency-Key entry goes, written by the create step itself. */
export interface IdempotencyWrite {
  key: string;
  /** The entry (the create adds task_id and queue_position). */
  entry: Record<string, unknown>;
  ttlSeconds: number;
}

/**
 * Task records and their indexes (DESIGN §5): creates and reads them; every listing takes the
 * project first. Status changes are TaskStateMachine's (task-state.machine.ts).
 */
@Injectable()
export class TaskRepository {
  private readonly prefix: string;
  private readonly redis: TaskScriptsRedis;

  constructor(@Inject(REDIS_CLIENT) redis: RedisClient, config: AppConfig) {
    this.prefix = config.redis.prefix;
    this.redis = withTaskScripts(redis);
  }

  /** A key no script reads, for the KEYS slots a call leaves unused. */
  unusedKey(): string {
    return redisKey(this.prefix, 'none');
  }

  taskKey(taskId: string): string {
    return redisKey(this.prefix, 'tasks', taskId);
  }

  progressKey(taskId: string): string {
    return redisKey(this.prefix, 'progress', taskId);
  }

  /**
   * The stream a terminal transition appends a task's webhook event to (when it has a
   * callback_url); @app/webhooks relays it into its delivery queue.
   */
  webhookOutboxKey(): string {
    return redisKey(this.prefix, ...WEBHOOK_OUTBOX_PARTS);
  }

  /**
   * Creates the record, its indexes and counters in one step. With `backlog` (the task is about to
   * be queued there), refuses (QueueFullError) when the queue's waiting jobs (wait + prioritized +
   * delayed) already reach `max`, and records the queue position the job will have once added
   * (CREATE_TASK). Without it the position stays 0.
   */
  async create(
    task: NewTask,
    backlog?: QueueBacklog,
    idempotency?: IdempotencyWrite,
    op: string = randomUUID(),
  ): Promise<TaskRecord> {
    const now = task.created_at.toISOString();
    const fields: Record<string, string> = {
      task_id: task.task_id,
      project_id: task.project_id,
      task_type: task.task_type,
      status: 'queued',
      priority: String(task.priority),
      task_data: JSON.stringify(task.task_data),
      metadata: task.metadata ? JSON.stringify(task.metadata) : '',
      callback_url: task.callback_url ?? '',
      progress: '0',
      current_step: 'waiting_in_queue',
      created_at: now,
      created_ms: String(task.created_at.getTime()),
      updated_at: now,
      estimated_duration: String(task.estimated_duration),
      queue_position: '0',
      queue: task.queue,
      job_id: task.job_id,
      attempts: '0',
      retries: '0',
    };
    const none = this.unusedKey();
    const keys = backlog?.keys ?? [none, none, none];
    let position: number;
    try {
      position = await this.redis.taskCreate(
        this.taskKey(task.task_id),
        ...keys,
        idempotency?.key ?? none,
        this.prefix,
        task.task_id,
        task.project_id,
        task.task_type,
        task.created_at.getTime(),
        now,
        backlog ? backlog.max : -1,
        backlog ? toBullPriority(task.priority) : '',
        op,
        idempotency ? JSON.stringify(idempotency.entry) : '',
        idempotency?.ttlSeconds ?? 0,
        ...Object.entries(fields).flat(),
      );
    } catch (err) {
      if ((err as Error).message?.includes('QUEUE_FULL')) {
        throw new QueueFullError(task.queue, QUEUE_FULL_RETRY_AFTER_SECONDS);
      }
      throw err;
    }
    return parseTaskHash({ ...fields, queue_position: String(position) })!;
  }

  async get(taskId: string): Promise<TaskRecord | null> {
    return parseTaskHash(await this.redis.hgetall(this.taskKey(taskId)));
  }

  /** The task, only if it belongs to the project (other projects' tasks do not exist for you). */
  async getInProject(
    projectIds: readonly string[] | null,
    taskId: string,
  ): Promise<TaskRecord | null> {
    const task = await this.get(taskId);
    if (!task || (projectIds && !projectIds.includes(task.project_id))) return null;
    return task;
  }

  /** Reads the job's rank in its queue and stores it as the record's queue_position (one step). */
  async recordQueuePosition(
    taskId: string,
    keys: QueuePositionKeys,
    jobId: string,
  ): Promise<number> {
    return Number(
      await this.redis.taskRecordQueuePosition(
        this.taskKey(taskId),
        keys.wait,
        keys.prioritized,
        jobId,
      ),
    );
  }

  /** Status and run id only (the cancel reconcile asks this of every running task). */
  async runStates(
    taskIds: readonly string[],
  ): Promise<Array<{ status: TaskStatus | null; runId: string | null }>> {
    if (taskIds.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of taskIds) pipeline.hmget(this.taskKey(id), 'status', 'run_id');
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([err, reply]) => {
      if (err) throw err;
      const [status, runId] = reply as [string | null, string | null];
      return { status: (status as TaskStatus | null) ?? null, runId: runId || null };
    });
  }

  /** Newest first; costs O(log n + limit) whatever the project's size. */
  async list(projectId: string, q: TaskListQuery): Promise<TaskPage> {
    const parts = ['tasks', 'by_project', projectId];
    if (q.status) parts.push('status', q.status);
    if (q.task_type) parts.push('type', q.task_type);
    const index = redisKey(this.prefix, ...parts);
    const start = (q.page - 1) * q.limit;
    const [[, total], [, ids]] = (await this.redis
      .multi()
      .zcard(index)
      .zrevrange(index, start, start + q.limit - 1)
      .exec()) as [[null, number], [null, string[]]];
    if (ids.length === 0) return { tasks: [], total };
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.taskKey(id));
    const hashes = (await pipeline.exec()) ?? [];
    const tasks = hashes
      .map(([, h]) => parseTaskHash(h as Record<string, string>))
      .filter((t): t is TaskRecord => t !== null);
    return { tasks, total };
  }
}
