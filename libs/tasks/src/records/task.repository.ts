import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '@app/config';
import {
  allPartitionPrefixes,
  partitionOf,
  partitionPrefix,
  projectPartitionPrefix,
  REDIS_CLIENT,
  redisKey,
  type RedisClient,
  taskPartitionPrefix,
} from '@app/redis';
import type { QueueName, TaskPriority } from '../queues';
import { parseTaskHash, type TaskRecord, type TaskResultRecord } from './task.record';
import { ENDED_TASKS_PARTS, WEBHOOK_OUTBOX_PARTS } from './task.scripts';
import { withTaskScripts, type TaskScriptsRedis } from './task-scripts.redis';
import type { TaskStatus } from './task-status';

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

/** An ended task as the partition's `ended_tasks` index has it. */
export interface EndedTask {
  taskId: string;
  endedMs: number;
}

/** What retention found when it came to remove a task (SWEEP_TASK). */
export type SweptTask =
  | {
      outcome: 'removed';
      projectId: string;
      queue: QueueName;
      jobId: string;
      result: TaskResultRecord | null;
    }
  /** No record; queued or processing again (a retry won); ended again after the cutoff. */
  | { outcome: 'gone' | 'pending' | 'young' };

/** What media retention found (EXPIRE_MEDIA): `expired` means marked, to be deleted now. */
export type ExpiredMedia =
  | { outcome: 'expired'; projectId: string; result: TaskResultRecord }
  | { outcome: 'gone' | 'pending' | 'young' | 'none' };

/**
 * Task records and their indexes (DESIGN §5): creates and reads them; every listing takes the
 * project first. Status changes are TaskStateMachine's (task-state.machine.ts). A task's keys
 * live in its project's partition (libs/redis/src/redis-partitions.ts), found from the task id.
 */
@Injectable()
export class TaskRepository {
  private readonly prefix: string;
  private readonly redis: TaskScriptsRedis;

  constructor(@Inject(REDIS_CLIENT) redis: RedisClient, config: AppConfig) {
    this.prefix = config.redis.prefix;
    this.redis = withTaskScripts(redis);
  }

  /** The key prefix of the task's partition: the scripts' first argument. */
  partitionPrefix(taskId: string): string {
    return taskPartitionPrefix(this.prefix, taskId);
  }

  /** A key no script reads, for a KEYS slot a call leaves unused (in the task's partition). */
  unusedKey(taskId: string): string {
    return redisKey(this.partitionPrefix(taskId), 'none');
  }

  taskKey(taskId: string): string {
    return redisKey(this.partitionPrefix(taskId), 'tasks', taskId);
  }

  progressKey(taskId: string): string {
    return redisKey(this.partitionPrefix(taskId), 'progress', taskId);
  }

  /**
   * The streams a terminal transition appends a task's webhook event to (when it has a
   * callback_url), one per partition; @app/webhooks relays them into its delivery queue.
   */
  webhookOutboxKeys(): string[] {
    return allPartitionPrefixes(this.prefix).map((p) => redisKey(p, ...WEBHOOK_OUTBOX_PARTS));
  }

  /** The outbox stream of the task's partition. */
  webhookOutboxKey(taskId: string): string {
    return redisKey(this.partitionPrefix(taskId), ...WEBHOOK_OUTBOX_PARTS);
  }

  /** The partition's ended tasks, scored by end time (ms; written by the terminal move). */
  endedKey(partition: number): string {
    return redisKey(partitionPrefix(this.prefix, partition), ...ENDED_TASKS_PARTS);
  }

  /**
   * Ended tasks of the partition whose end is in [fromMs, toMs], oldest first, skipping the first
   * `offset`: O(log n + limit), whatever the partition holds.
   */
  async ended(
    partition: number,
    fromMs: number,
    toMs: number,
    offset: number,
    limit: number,
  ): Promise<EndedTask[]> {
    const flat = await this.redis.zrangebyscore(
      this.endedKey(partition),
      Number.isFinite(fromMs) ? fromMs : '-inf',
      toMs,
      'WITHSCORES',
      'LIMIT',
      offset,
      limit,
    );
    const out: EndedTask[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      out.push({ taskId: flat[i], endedMs: Number(flat[i + 1]) });
    }
    return out;
  }

  /**
   * Retention: removes the task and everything of it in its partition (SWEEP_TASK) when it is
   * ended and ended at or before `cutoffMs`, both read again in the same step.
   */
  async sweep(taskId: string, cutoffMs: number): Promise<SweptTask> {
    const [outcome, projectId, queue, jobId, result] = await this.redis.taskSweep(
      this.taskKey(taskId),
      this.progressKey(taskId),
      this.partitionPrefix(taskId),
      String(cutoffMs),
    );
    if (outcome !== 'removed') return { outcome: outcome as 'gone' | 'pending' | 'young' };
    return {
      outcome,
      projectId,
      queue: queue as QueueName,
      jobId,
      result: result ? (JSON.parse(result) as TaskResultRecord) : null,
    };
  }

  /**
   * Media retention: marks the output of a task ended at or before `cutoffMs` deleted
   * (EXPIRE_MEDIA); the caller deletes the object once this answers `expired`.
   */
  async expireMedia(taskId: string, cutoffMs: number, at = new Date()): Promise<ExpiredMedia> {
    const [outcome, projectId, result] = await this.redis.taskExpireMedia(
      this.taskKey(taskId),
      this.partitionPrefix(taskId),
      String(cutoffMs),
      at.toISOString(),
    );
    if (outcome !== 'expired') {
      return { outcome: outcome as 'gone' | 'pending' | 'young' | 'none' };
    }
    return { outcome, projectId, result: JSON.parse(result) as TaskResultRecord };
  }

  /**
   * Creates the record, its indexes and counters in one step (CREATE_TASK), with `position` the
   * queue position its job will have once added (TaskQueueService.reserve read it; 0 when the
   * task is not about to be queued). The task id must be in the project's partition (newTaskId).
   */
  async create(
    task: NewTask,
    position = 0,
    idempotency?: IdempotencyWrite,
    op: string = randomUUID(),
  ): Promise<TaskRecord> {
    if (partitionOf(task.task_id) !== partitionOf(task.project_id)) {
      throw new Error(`task id ${task.task_id} is not in project ${task.project_id}'s partition`);
    }
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
    const stored = await this.redis.taskCreate(
      this.taskKey(task.task_id),
      idempotency?.key ?? this.unusedKey(task.task_id),
      this.partitionPrefix(task.task_id),
      task.task_id,
      task.project_id,
      task.task_type,
      task.created_at.getTime(),
      now,
      position,
      op,
      idempotency ? JSON.stringify(idempotency.entry) : '',
      idempotency?.ttlSeconds ?? 0,
      ...Object.entries(fields).flat(),
    );
    return parseTaskHash({ ...fields, queue_position: String(stored) })!;
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

  /**
   * Status and run id only (the cancel reconcile asks this of every running task): one pipeline
   * per partition, as a pipeline on Redis Cluster may not span slots.
   */
  async runStates(
    taskIds: readonly string[],
  ): Promise<Array<{ status: TaskStatus | null; runId: string | null }>> {
    const byPartition = new Map<number, number[]>();
    taskIds.forEach((id, i) => {
      const p = partitionOf(id);
      byPartition.set(p, [...(byPartition.get(p) ?? []), i]);
    });
    const out = new Array<{ status: TaskStatus | null; runId: string | null }>(taskIds.length);
    await Promise.all(
      [...byPartition.values()].map(async (indexes) => {
        const pipeline = this.redis.pipeline();
        for (const i of indexes) pipeline.hmget(this.taskKey(taskIds[i]), 'status', 'run_id');
        const replies = (await pipeline.exec()) ?? [];
        replies.forEach(([err, reply], j) => {
          if (err) throw err;
          const [status, runId] = reply as [string | null, string | null];
          out[indexes[j]] = { status: (status as TaskStatus | null) ?? null, runId: runId || null };
        });
      }),
    );
    return out;
  }

  /** Newest first; costs O(log n + limit) whatever the project's size. */
  async list(projectId: string, q: TaskListQuery): Promise<TaskPage> {
    const parts = ['tasks', 'by_project', projectId];
    if (q.status) parts.push('status', q.status);
    if (q.task_type) parts.push('type', q.task_type);
    const index = redisKey(projectPartitionPrefix(this.prefix, projectId), ...parts);
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
