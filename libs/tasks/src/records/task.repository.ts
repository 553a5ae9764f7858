import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { redisKey } from '@app/redis';
import { Redis } from 'ioredis';
import { toBullPriority, type QueueName, type TaskPriority } from '../queues';
import { parseTaskHash, type TaskRecord, type TaskResultRecord } from './task.record';
import {
  CREATE_TASK,
  RECORD_QUEUE_POSITION,
  REPORT_PROGRESS,
  START_RUN,
  TRANSITION_TASK,
  WEBHOOK_OUTBOX_PARTS,
} from './task.scripts';
import { allowedFrom, type TaskStatus } from './task-status';
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

/** Fields a transition may write besides status; null deletes the field. */
export type TaskPatch = Partial<{
  started_at: string | null;
  completed_at: string | null;
  error: string | null;
  result: TaskResultRecord | null;
  progress: number;
  current_step: string;
  run_id: string | null;
  attempts: number;
  retries: number;
  job_id: string;
  queue_position: number;
}>;

/** Fields a run's start writes besides status, attempts and run_id (the step computes those). */
export type RunStartPatch = Pick<TaskPatch, 'started_at' | 'progress' | 'current_step'>;

/**
 * What `startRun` found: no record, a record that belongs to another job, one whose status does
 * not let a run start (`status`), or a started run (`previous`: the status and run it replaced;
 * processing means a stalled run of a lost worker was taken over).
 */
export type RunStart =
  | { outcome: 'missing' }
  | { outcome: 'superseded'; task: TaskRecord }
  | { outcome: 'illegal'; task: TaskRecord }
  | {
      outcome: 'started';
      task: TaskRecord;
      previous: { status: TaskStatus; runId: string | null };
    };

/** Why a transition was refused. */
export class TransitionError extends Error {
  constructor(
    readonly reason: 'not_found' | 'illegal' | 'stale_run',
    readonly current?: TaskStatus,
  ) {
    super(reason === 'illegal' ? `illegal transition from ${current}` : reason);
  }
}

interface ScriptedRedis extends Redis {
  amsCreateTask(...keysAndArgs: Array<string | number>): Promise<number>;
  amsRecordQueuePosition(
    taskKey: string,
    wait: string,
    prioritized: string,
    jobId: string,
  ): Promise<number>;
  amsTransitionTask(taskKey: string, progressKey: string, ...args: string[]): Promise<string>;
  amsStartRun(taskKey: string, progressKey: string, ...args: string[]): Promise<string[]>;
  amsReportProgress(
    taskKey: string,
    progressKey: string,
    ...args: string[]
  ): Promise<[string, string]>;
}

/**
 * Task records and their indexes (DESIGN §5). Owns every `tasks:*` and `progress:*` key; every
 * listing takes the project first.
 */
@Injectable()
export class TaskRepository {
  private readonly prefix: string;
  private readonly redis: ScriptedRedis;

  constructor(@Inject(Redis) redis: Redis, config: AppConfig) {
    this.prefix = config.redis.prefix;
    this.redis = redis as ScriptedRedis;
    // defineCommand is idempotent per client; EVALSHA with a fallback to EVAL.
    if (!('amsCreateTask' in redis)) {
      redis.defineCommand('amsCreateTask', { numberOfKeys: 4, lua: CREATE_TASK });
      redis.defineCommand('amsRecordQueuePosition', {
        numberOfKeys: 3,
        lua: RECORD_QUEUE_POSITION,
      });
      redis.defineCommand('amsTransitionTask', { numberOfKeys: 2, lua: TRANSITION_TASK });
      redis.defineCommand('amsReportProgress', { numberOfKeys: 2, lua: REPORT_PROGRESS });
    }
    if (!('amsStartRun' in redis)) {
      redis.defineCommand('amsStartRun', { numberOfKeys: 2, lua: START_RUN });
    }
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
  async create(task: NewTask, backlog?: QueueBacklog): Promise<TaskRecord> {
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
    const none = redisKey(this.prefix, 'none');
    const keys = backlog?.keys ?? [none, none, none];
    let position: number;
    try {
      position = await this.redis.amsCreateTask(
        this.taskKey(task.task_id),
        ...keys,
        this.prefix,
        task.task_id,
        task.project_id,
        task.task_type,
        task.created_at.getTime(),
        now,
        backlog ? backlog.max : -1,
        backlog ? toBullPriority(task.priority) : '',
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
      await this.redis.amsRecordQueuePosition(
        this.taskKey(taskId),
        keys.wait,
        keys.prioritized,
        jobId,
      ),
    );
  }

  /**
   * Moves a task to `to` if its current status allows it (and, with `runId`, only if that run
   * still owns it). Returns the status it left.
   */
  async transition(
    taskId: string,
    to: TaskStatus,
    patch: TaskPatch = {},
    opts: { runId?: string; from?: readonly TaskStatus[] } = {},
  ): Promise<TaskStatus> {
    const { set, del } = encodePatch(patch);
    const from = opts.from ?? allowedFrom(to);
    try {
      return (await this.redis.amsTransitionTask(
        this.taskKey(taskId),
        this.progressKey(taskId),
        this.prefix,
        to,
        from.join(','),
        new Date().toISOString(),
        opts.runId ?? '',
        JSON.stringify(set),
        JSON.stringify(del),
      )) as TaskStatus;
    } catch (err) {
      const message = (err as Error).message ?? '';
      if (message.includes('NOT_FOUND')) throw new TransitionError('not_found');
      if (message.includes('STALE_RUN')) throw new TransitionError('stale_run');
      const illegal = /ILLEGAL (\w+)/.exec(message);
      if (illegal) throw new TransitionError('illegal', illegal[1] as TaskStatus);
      throw err;
    }
  }

  /**
   * A worker's job `jobId` starts a run of the task, in one round trip: when the record belongs
   * to that job and is queued (or processing: a stalled run of a lost worker is taken over), it
   * moves to processing with attempts + 1, run_id `<jobId>#<attempts>` and `patch`, exactly as
   * `transition(taskId, 'processing', ..., { from: ['queued', 'processing'] })` would (indexes,
   * counters, progress hash). Returns the record as it is after the step.
   */
  async startRun(taskId: string, jobId: string, patch: RunStartPatch): Promise<RunStart> {
    const reply = await this.redis.amsStartRun(
      this.taskKey(taskId),
      this.progressKey(taskId),
      this.prefix,
      jobId,
      new Date().toISOString(),
      JSON.stringify(encodePatch(patch).set),
    );
    const [outcome, previousStatus, previousRun] = reply;
    const hash: Record<string, string> = {};
    for (let i = 3; i + 1 < reply.length; i += 2) hash[reply[i]] = reply[i + 1];
    const task = parseTaskHash(hash);
    if (outcome === 'missing' || !task) return { outcome: 'missing' };
    if (outcome === 'superseded' || outcome === 'illegal') return { outcome, task };
    return {
      outcome: 'started',
      task,
      previous: { status: previousStatus as TaskStatus, runId: previousRun || null },
    };
  }

  /** Returns the task's status after the report and the stored (monotonic) progress. */
  async reportProgress(
    taskId: string,
    runId: string,
    fraction: number,
    step: string,
  ): Promise<{ status: string; progress: number }> {
    const [status, progress] = await this.redis.amsReportProgress(
      this.taskKey(taskId),
      this.progressKey(taskId),
      this.prefix,
      runId,
      String(Math.max(0, Math.min(1, fraction))),
      step,
      new Date().toISOString(),
    );
    return { status, progress: Number(progress) };
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

/** A patch as the scripts take it: fields to set (as strings) and fields to delete (null). */
function encodePatch(patch: TaskPatch): { set: Record<string, string>; del: string[] } {
  const set: Record<string, string> = {};
  const del: string[] = [];
  for (const [field, value] of Object.entries(patch)) {
    if (value === null) del.push(field);
    else if (value !== undefined)
      set[field] = typeof value === 'object' ? JSON.stringify(value) : String(value);
  }
  return { set, del };
}
