import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { REDIS_CLIENT, type RedisClient } from '@app/redis';
import {
  parseTaskHash,
  type TaskRecord,
  type TaskResultRecord,
  type TaskWebhookState,
} from './task.record';
import { TaskRepository } from './task.repository';
import { TASK_MOVES, type TaskMoveName } from './task-moves';
import { withTaskScripts, type TaskScriptsRedis } from './task-scripts.redis';
import type { TaskStatus } from './task-status';

/** Fields a move may write besides status; null deletes the field. */
type TaskPatch = Partial<{
  started_at: string | null;
  completed_at: string | null;
  error: string | null;
  error_class: string | null;
  next_retry_at: string | null;
  class_retries: Record<string, number> | null;
  result: TaskResultRecord | null;
  progress: number;
  current_step: string;
  run_id: string | null;
  attempts: number;
  retries: number;
  lost_runs: number;
  lock_losses: number;
  job_id: string;
  queue_position: number;
  reconcile_requeues: number;
  media_deleted_at: string | null;
}>;

/** Why a move was refused. */
export class TransitionError extends Error {
  constructor(
    readonly reason: 'not_found' | 'illegal' | 'stale_run',
    readonly current?: TaskStatus,
  ) {
    super(reason === 'illegal' ? `illegal transition from ${current}` : reason);
  }
}

/**
 * What `claimRun` found: no record, a record that belongs to another job, one whose status does
 * not let a run start, a task whose lost runs used up its budget (now failed), or a started run
 * (`previous`: the status and run it replaced; processing means a run was taken over).
 */
export type RunClaim =
  | { outcome: 'missing' }
  | { outcome: 'superseded' | 'illegal' | 'exhausted'; task: TaskRecord }
  | {
      outcome: 'started';
      task: TaskRecord;
      previous: { status: TaskStatus; runId: string | null };
    };

/** What a run's progress report found: still its own, or no longer (why). */
export type ProgressAnswer = 'processing' | 'superseded' | 'gone' | TaskStatus;

/** Why a run hands its task back to the queue without charging an attempt. */
export type HandBackReason = 'shutdown' | 'lock_lost' | 'redis_unavailable';

const HAND_BACK_STEPS: Record<HandBackReason, string> = {
  shutdown: 'requeued_after_shutdown',
  lock_lost: 'requeued_after_lock_loss',
  redis_unavailable: 'requeued_after_redis_error',
};

/** Every move's options: an operation token makes a repeated call answer as the first did. */
interface MoveOptions {
  op?: string;
}

/**
 * The owner of every task status change (DESIGN §4, task-moves.ts): one method per named move,
 * each with its from-states and target from the table and its patch defined here; the generic
 * script behind them is private. A caller that may repeat a call (a retried outcome write) passes
 * the same `op` each time.
 */
@Injectable()
export class TaskStateMachine {
  private readonly redis: TaskScriptsRedis;

  constructor(
    @Inject(REDIS_CLIENT) redis: RedisClient,
    private readonly records: TaskRepository,
  ) {
    this.redis = withTaskScripts(redis);
  }

  /**
   * A worker's job `jobId` starts a run of the task (queued → processing, or processing →
   * processing: a lost worker's run is taken over). `op` is the fetch's BullMQ lock token;
   * `ownLostRuns` the run ids this process lost its lock on (their takeover charges nothing);
   * `maxLostRuns` how many other workers' runs may be lost before the task fails.
   */
  async claimRun(
    taskId: string,
    jobId: string,
    opts: { op: string; ownLostRuns: readonly string[]; maxLostRuns: number; startedAt: string },
  ): Promise<RunClaim> {
    const at = new Date();
    const reply = await this.redis.taskClaimRun(
      this.records.taskKey(taskId),
      this.records.progressKey(taskId),
      this.records.partitionPrefix(taskId),
      jobId,
      at.toISOString(),
      JSON.stringify({ started_at: opts.startedAt, progress: '0', current_step: 'starting' }),
      opts.op,
      opts.ownLostRuns.join(','),
      String(opts.maxLostRuns),
      String(at.getTime()),
    );
    const [outcome, previousStatus, previousRun] = reply;
    const hash: Record<string, string> = {};
    for (let i = 3; i + 1 < reply.length; i += 2) hash[reply[i]] = reply[i + 1];
    const task = parseTaskHash(hash);
    if (outcome === 'missing' || !task) return { outcome: 'missing' };
    if (outcome === 'superseded' || outcome === 'illegal' || outcome === 'exhausted') {
      return { outcome, task };
    }
    return {
      outcome: 'started',
      task,
      previous: { status: previousStatus as TaskStatus, runId: previousRun || null },
    };
  }

  /** Progress of the run `runId`: forward only; the answer tells a run it is no longer its own. */
  async reportProgress(
    taskId: string,
    runId: string,
    fraction: number,
    step: string,
  ): Promise<{ status: ProgressAnswer; progress: number }> {
    const [status, progress] = await this.redis.taskReportProgress(
      this.records.taskKey(taskId),
      this.records.progressKey(taskId),
      this.records.partitionPrefix(taskId),
      runId,
      String(Math.max(0, Math.min(1, fraction))),
      step,
      new Date().toISOString(),
    );
    return { status: (status || 'gone') as ProgressAnswer, progress: Number(progress) };
  }

  /** The output is stored; recorded before Payload registration so a retry resumes from it. */
  recordPendingResult(
    taskId: string,
    runId: string,
    result: TaskResultRecord,
    o: MoveOptions = {},
  ): Promise<TaskStatus> {
    return this.move(
      'recordPendingResult',
      taskId,
      { result: { ...result, pending: 'payload' } },
      {
        ...o,
        runId,
      },
    );
  }

  complete(
    taskId: string,
    runId: string,
    result: TaskResultRecord,
    o: MoveOptions = {},
  ): Promise<TaskStatus> {
    const { pending: _done, ...final } = result;
    return this.move(
      'complete',
      taskId,
      {
        progress: 1,
        current_step: 'upload_complete',
        completed_at: new Date().toISOString(),
        error: null,
        error_class: null,
        next_retry_at: null,
        result: final,
      },
      { ...o, runId },
    );
  }

  /** A retryable error: back to the queue until `nextRetryAt`, the class's retries counted. */
  scheduleRetry(
    taskId: string,
    runId: string,
    retry: {
      error: string;
      errorClass: string;
      nextRetryAt: string;
      classRetries: Record<string, number>;
    },
    o: MoveOptions = {},
  ): Promise<TaskStatus> {
    return this.move(
      'scheduleRetry',
      taskId,
      {
        run_id: null,
        progress: 0,
        current_step: 'waiting_for_retry',
        error: retry.error,
        error_class: retry.errorClass,
        next_retry_at: retry.nextRetryAt,
        class_retries: retry.classRetries,
      },
      { ...o, runId },
    );
  }

  /**
   * The run stops through no fault of the task's (shutdown, its lock lost, Redis refusing its
   * writes): back to the queue with the attempt uncharged (`attempts`: the count before it).
   */
  handBack(
    taskId: string,
    runId: string,
    back: { attempts: number; reason: HandBackReason; lockLosses?: number },
    o: MoveOptions = {},
  ): Promise<TaskStatus> {
    return this.move(
      'handBack',
      taskId,
      {
        run_id: null,
        attempts: back.attempts,
        progress: 0,
        current_step: HAND_BACK_STEPS[back.reason],
        ...(back.lockLosses !== undefined ? { lock_losses: back.lockLosses } : {}),
      },
      { ...o, runId },
    );
  }

  fail(
    taskId: string,
    runId: string,
    failure: { error: string; errorClass: string; clearResult: boolean },
    o: MoveOptions = {},
  ): Promise<TaskStatus> {
    return this.move(
      'fail',
      taskId,
      {
        error: failure.error,
        error_class: failure.errorClass,
        next_retry_at: null,
        completed_at: new Date().toISOString(),
        ...(failure.clearResult ? { result: null } : {}),
      },
      { ...o, runId },
    );
  }

  /** A task that never ran fails: its job could not be added, or no worker knows its type. */
  failUnqueued(taskId: string, error: string, o: MoveOptions = {}): Promise<TaskStatus> {
    return this.move(
      'failUnqueued',
      taskId,
      { error, completed_at: new Date().toISOString(), next_retry_at: null },
      o,
    );
  }

  /** A task whose runs were lost beyond its budget, or whose job BullMQ gave up. */
  failLost(taskId: string, error: string, o: MoveOptions = {}): Promise<TaskStatus> {
    return this.move(
      'failLost',
      taskId,
      { error, completed_at: new Date().toISOString(), run_id: null, next_retry_at: null },
      o,
    );
  }

  cancel(taskId: string, o: MoveOptions = {}): Promise<TaskStatus> {
    return this.move(
      'cancel',
      taskId,
      { completed_at: new Date().toISOString(), current_step: 'cancelled', next_retry_at: null },
      o,
    );
  }

  /** A cancelled run's stored output was deleted: the pending result pointing at it goes too. */
  discardResult(taskId: string, runId: string, o: MoveOptions = {}): Promise<TaskStatus> {
    return this.move('discardResult', taskId, { result: null }, { ...o, runId });
  }

  /**
   * Manual retry: failed or cancelled → queued with a fresh job (`queuePosition`: where it will
   * wait, TaskQueueService.reserve read it, and refused a full queue).
   */
  retry(
    taskId: string,
    next: { retries: number; jobId: string; queuePosition: number },
    o: MoveOptions = {},
  ): Promise<TaskStatus> {
    return this.move(
      'retry',
      taskId,
      {
        retries: next.retries,
        job_id: next.jobId,
        attempts: 0,
        lost_runs: 0,
        lock_losses: 0,
        class_retries: null,
        progress: 0,
        current_step: 'waiting_in_queue',
        error: null,
        error_class: null,
        next_retry_at: null,
        result: null,
        media_deleted_at: null,
        started_at: null,
        completed_at: null,
        run_id: null,
        queue_position: next.queuePosition,
      },
      o,
    );
  }

  /**
   * The reconciler found the task's job missing or ended: queued again, for its job to be added
   * anew (`requeues`: how often that has happened to this task now).
   */
  requeue(taskId: string, requeues: number, o: MoveOptions = {}): Promise<TaskStatus> {
    return this.move(
      'requeue',
      taskId,
      {
        run_id: null,
        progress: 0,
        current_step: 'waiting_in_queue',
        reconcile_requeues: requeues,
      },
      o,
    );
  }

  /**
   * One delivery attempt of webhook event `webhookId`, merged into the task's `webhook` field
   * while it still describes that event and is pending. `op` names the attempt (the same attempt
   * recorded twice counts once). False when the task no longer waits for this event.
   */
  async recordWebhookOutcome(
    taskId: string,
    webhookId: string,
    patch: Partial<TaskWebhookState>,
    op: string,
  ): Promise<boolean> {
    const written = await this.redis.taskRecordWebhookOutcome(
      this.records.taskKey(taskId),
      webhookId,
      JSON.stringify(patch),
      op,
    );
    return written === 1;
  }

  /** The one generic move, private: the named moves above are the only callers. */
  private async move(
    name: TaskMoveName,
    taskId: string,
    patch: TaskPatch,
    opts: MoveOptions & { runId?: string },
  ): Promise<TaskStatus> {
    const rule = TASK_MOVES[name];
    if (rule.ownRun && !opts.runId) throw new Error(`move ${name} needs the run id`);
    const { set, del } = encodePatch(patch);
    const at = new Date();
    try {
      return (await this.redis.taskMove(
        this.records.taskKey(taskId),
        this.records.progressKey(taskId),
        this.records.partitionPrefix(taskId),
        name,
        rule.from.join(','),
        rule.to ?? '',
        at.toISOString(),
        opts.runId ?? '',
        opts.op ?? randomUUID(),
        JSON.stringify(set),
        JSON.stringify(del),
        String(at.getTime()),
      )) as TaskStatus;
    } catch (err) {
      const message = (err as Error).message ?? '';
      // Redis may prefix a script's error reply with ERR.
      if (/\bNOT_FOUND\b/.test(message)) throw new TransitionError('not_found');
      if (/\bSTALE_RUN\b/.test(message)) throw new TransitionError('stale_run');
      const illegal = /\bILLEGAL (\w+)/.exec(message);
      if (illegal) throw new TransitionError('illegal', illegal[1] as TaskStatus);
      throw err;
    }
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
