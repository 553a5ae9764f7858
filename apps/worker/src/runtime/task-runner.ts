import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { PayloadError } from '@app/payload';
import { isRedisUnavailableError } from '@app/redis';
import {
  TaskDefinitions,
  TaskRepository,
  TaskStateMachine,
  TransitionError,
  untilAborted,
  validateTaskData,
  type TaskDefinition,
  type TaskJobData,
  type TaskRecord,
  type TaskResultRecord,
} from '@app/tasks';
import { DelayedError, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import { SafetyCheck } from '../safety/safety.check';
import { writeOutcome } from './outcome-writer';
import { ProcessorRegistry } from './processor.registry';
import { ProgressCoalescer } from './progress-coalescer';
import { RetryPolicy } from './retry-policy';
import { startDeadline } from './run-deadline';
import { removeTempOutput, RunOutput } from './run-output';
import { RunRegistry, type ActiveRun } from './run-registry';
import {
  classifyError,
  LockLostError,
  RunSupersededError,
  TaskCancelledError,
} from './task-errors';
import { TaskEvents } from './task-events';
import type { RunningTask, TaskOutput, TaskProcessor } from './task-processor';
import { STALLED_LIMIT_REASON, WorkerShutdownError } from './worker-shutdown.errors';

/** How long a job fetched again while an earlier call of it still winds down here waits. */
const REFETCH_DEFER_MS = 1000;
/** How long a job waits when Redis refused its claim or outcome (the job goes back delayed). */
const REDIS_UNAVAILABLE_DELAY_MS = 5000;

type LogFields = { task_id: string; project_id: string };

/** The output of a run that reached storage, and how far it got. */
interface StoredOutput {
  key: string;
  /** The record holds it as a pending result: a retry may resume from registration. */
  recorded: boolean;
  /** Registration in Payload began: a document may point at it. */
  registering: boolean;
}

/** Everything settling a run needs to know about it. */
interface RunContext {
  job: Job<TaskJobData>;
  token: string | undefined;
  task: TaskRecord;
  runId: string;
  attempt: number;
  signal: AbortSignal;
  started: number;
  stored?: StoredOutput;
  log: LogFields;
}

/**
 * Runs one BullMQ job of a task: claim → processor → safety check (tasks with `safety_check`) →
 * store → register → complete. The moves themselves belong to TaskStateMachine; the retry rule,
 * the time limit, progress coalescing, the safety check, the output's way out and the registry of
 * runs are collaborators of their own. Processors only compute.
 */
@Injectable()
export class TaskRunner {
  private readonly logger = new Logger(TaskRunner.name);
  readonly runs = new RunRegistry();
  private readonly retryPolicy: RetryPolicy;
  private completed = 0;
  /** Set when the worker shuts down past its grace: every run, even one starting now, goes back. */
  private handingBack = false;

  constructor(
    private readonly tasks: TaskRepository,
    private readonly moves: TaskStateMachine,
    private readonly definitions: TaskDefinitions,
    private readonly registry: ProcessorRegistry,
    private readonly output: RunOutput,
    private readonly config: AppConfig,
    private readonly events: TaskEvents,
    private readonly safety: SafetyCheck,
  ) {
    this.retryPolicy = new RetryPolicy(config);
  }

  /** Task ids running here now. */
  activeTaskIds(): string[] {
    return this.runs.taskIds();
  }

  tasksCompleted(): number {
    return this.completed;
  }

  /** Aborts the runs of a task held by this process (cancel broadcast). */
  abort(taskId: string, reason: Error): boolean {
    const runs = this.runs.byTask(taskId);
    const aborted = this.runs.abort(runs, reason) > 0;
    if (aborted) {
      this.logger.log(
        { task_id: taskId, project_id: runs[0].projectId },
        `aborting: ${reason.message}`,
      );
    }
    return aborted;
  }

  /** BullMQ could not renew these jobs' locks: their runs stop and hand their tasks back. */
  locksLost(jobIds: readonly string[]): void {
    for (const jobId of jobIds) {
      for (const run of this.runs.computingByJob(jobId)) {
        if (run.controller.signal.aborted) continue;
        this.logger.warn(
          { task_id: run.taskId, project_id: run.projectId },
          `lost the lock of job ${jobId}; stopping run ${run.runId}`,
        );
        run.controller.abort(new LockLostError());
      }
    }
  }

  /** Runs the store no longer lets continue (cancelled, taken over) are aborted. */
  async reconcile(): Promise<void> {
    const runs = this.runs.all();
    const states = await this.tasks.runStates(runs.map((r) => r.taskId));
    runs.forEach((run, i) => {
      const { status, runId } = states[i];
      if (status === 'processing' && runId === run.runId) return;
      this.runs.abort(
        [run],
        status === 'cancelled' || status === null
          ? new TaskCancelledError()
          : new RunSupersededError(),
      );
    });
  }

  /**
   * Shutdown past the grace period: stops every run of this process and hands its task back to
   * the queue (record `queued`, job back to wait, no attempt charged); runs that start from now
   * on are handed back at once. Resolves when every run has settled.
   */
  async handBackAll(): Promise<void> {
    this.handingBack = true;
    const runs = this.runs.all();
    this.runs.abort(runs, new WorkerShutdownError());
    await Promise.all(runs.map((run) => run.finished));
  }

  /**
   * BullMQ failed a job because it stalled more often than its backstop allows (it fails such
   * a job when it is next fetched, without running it). The task would otherwise stay queued or
   * processing for ever: it is failed with a reason the user can act on.
   */
  async jobLost(job: Job<TaskJobData>, err: Error): Promise<void> {
    if (err.message !== STALLED_LIMIT_REASON) return;
    const taskId = job.data.task_id;
    const task = await this.tasks.get(taskId);
    if (!task || task.job_id !== job.id) return;
    const message =
      `the worker running this task was lost ${job.stalledCounter} times (killed, or its ` +
      'event loop blocked past the job lock); giving up';
    try {
      await this.moves.failLost(taskId, message);
    } catch (moveErr) {
      if (moveErr instanceof TransitionError) return;
      throw moveErr;
    }
    this.failedLost(task, message);
  }

  /** A task failed because its runs were lost (the log line and the metric). */
  private failedLost(task: TaskRecord, message: string): void {
    this.logger.error(fieldsOf(task), `failed: ${message}`);
    this.events.emit({
      type: 'failed',
      task,
      attempt: task.attempts,
      durationMs: 0,
      errorClass: 'default',
    });
  }

  async run(
    job: Job<TaskJobData>,
    token: string | undefined,
    jobSignal?: AbortSignal,
  ): Promise<string> {
    const taskId = job.data.task_id;
    const log = { task_id: taskId, project_id: job.data.project_id };
    // The job's name is its task type (TaskQueueService.enqueue).
    const def = this.definitions.get(job.name);
    const processor = this.registry.get(job.name);
    if (!def || !processor) return this.unknownType(job, token, log);
    if (this.runs.callsInFlight(job.id!) > 1) {
      // Fetched again while an earlier call of it is still here: that call lost the job's lock
      // (the stalled check gave the job back). It stops; this one waits until it has.
      this.runs.abort(this.runs.computingByJob(job.id!), new LockLostError());
      this.logger.warn(log, `job ${job.id} fetched again while its earlier run winds down here`);
      return this.postpone(job, token, Date.now() + REFETCH_DEFER_MS);
    }
    if (this.handingBack) {
      // Rare (shutdown): a job whose record is gone or superseded falls through and is dropped.
      const current = await this.tasks.get(taskId);
      if (current && current.job_id === job.id) {
        return this.requeue(job, token, log, 'handed back before it started');
      }
    }

    let claim;
    try {
      claim = await this.moves.claimRun(taskId, job.id!, {
        op: token ?? randomUUID(),
        ownLostRuns: this.runs.lostRunIds(),
        maxLostRuns: this.config.tasks.maxRetryAttempts,
        startedAt: new Date().toISOString(),
      });
    } catch (err) {
      if (!isRedisUnavailableError(err)) throw err;
      this.logger.warn(log, `could not claim (${errorMessage(err)}); job back in a while`);
      return this.postpone(job, token, Date.now() + REDIS_UNAVAILABLE_DELAY_MS);
    }
    if (claim.outcome === 'missing') {
      this.logger.warn(log, `job ${job.id} has no task record; dropped`);
      return 'missing';
    }
    const task = claim.task;
    if (claim.outcome === 'superseded') {
      this.logger.warn(fieldsOf(task), `job ${job.id} superseded by ${task.job_id}; dropped`);
      return 'superseded';
    }
    if (claim.outcome === 'exhausted') {
      this.failedLost(task, task.error ?? 'runs lost');
      return 'failed';
    }
    if (claim.outcome !== 'started') {
      this.logger.log(fieldsOf(task), `not started: the task is ${task.status}`);
      return 'skipped';
    }
    if (claim.previous.status === 'processing') {
      this.logger.warn(
        fieldsOf(task),
        `taking over run ${claim.previous.runId ?? '?'} (job ${job.id}, attempt ${task.attempts})`,
      );
    }
    return this.execute(job, token, jobSignal, def, processor, task);
  }

  /** The claimed run: processor, storage, registration, outcome. */
  private async execute(
    job: Job<TaskJobData>,
    token: string | undefined,
    jobSignal: AbortSignal | undefined,
    def: TaskDefinition,
    processor: TaskProcessor<object>,
    task: TaskRecord,
  ): Promise<string> {
    const taskId = task.task_id;
    const runId = task.run_id!;
    const attempt = task.attempts;
    const log = fieldsOf(task);
    const controller = new AbortController();
    let settle!: () => void;
    const finished = new Promise<void>((resolve) => (settle = resolve));
    const active: ActiveRun = {
      runId,
      taskId,
      jobId: job.id!,
      projectId: task.project_id,
      controller,
      finished,
      finishing: false,
    };
    this.runs.add(active);
    if (this.handingBack) controller.abort(new WorkerShutdownError());
    const onJobAbort = () => controller.abort(jobSignal?.reason ?? new TaskCancelledError());
    jobSignal?.addEventListener('abort', onJobAbort, { once: true });
    const deadline = startDeadline(
      { typeSeconds: def.timeoutSeconds, configSeconds: this.config.tasks.timeoutSeconds },
      controller,
    );
    const started = Date.now();
    this.logger.log(log, `started ${task.task_type} attempt ${attempt} run ${runId}`);
    this.events.emit({
      type: 'started',
      task,
      attempt,
      queueWaitMs: Math.max(0, started - job.timestamp),
    });

    const ctx: RunContext = {
      job,
      token,
      task,
      runId,
      attempt,
      signal: controller.signal,
      started,
      log,
    };
    try {
      const data = validateTaskData(def, task.task_data);
      const progress = new ProgressCoalescer(
        async (fraction, step) =>
          (await this.moves.reportProgress(taskId, runId, fraction, step)).status,
        controller,
        started,
      );
      let result = await this.makeMedia(ctx, def, processor, data, progress, active);
      if (this.output.registers) {
        if (!ctx.stored!.recorded) {
          // Recorded before registering, so a failed registration is retried from here.
          const pending = result;
          await writeOutcome((op) =>
            this.moves.recordPendingResult(taskId, runId, pending, { op }),
          );
          ctx.stored!.recorded = true;
        }
        await progress.report(0.97, 'registering_media', true);
        ctx.stored!.registering = true;
        const id = await this.output.register(task, def, data, result, controller.signal);
        result = { ...result, payload_media_id: id };
      }
      // A cancel or timeout that came while the last step finished still counts.
      if (controller.signal.aborted) throw controller.signal.reason;
      const final: TaskResultRecord = result;
      await writeOutcome((op) => this.moves.complete(taskId, runId, final, { op }));
      this.completed += 1;
      this.logger.log(log, `completed in ${((Date.now() - started) / 1000).toFixed(2)} s`);
      this.events.emit({ type: 'completed', task, attempt, durationMs: Date.now() - started });
      return 'completed';
    } catch (err) {
      return await this.settleFailure(ctx, err);
    } finally {
      deadline.clear();
      jobSignal?.removeEventListener('abort', onJobAbort);
      this.runs.delete(runId);
      settle();
    }
  }

  /**
   * The run's media in storage: what an earlier run stored but could not register (resumed), or
   * the processor's output, stored. Marks the run finishing once the processor is done.
   */
  private async makeMedia(
    ctx: RunContext,
    def: TaskDefinition,
    processor: TaskProcessor<object>,
    data: object,
    progress: ProgressCoalescer,
    active: ActiveRun,
  ): Promise<TaskResultRecord> {
    const { task, log } = ctx;
    const resumed = await this.output.resumable(task);
    if (resumed) {
      active.finishing = true;
      ctx.stored = { key: resumed.media_key, recorded: true, registering: true };
      this.logger.log(log, 'media already stored; resuming at registering_media');
      return resumed;
    }
    const safety = this.safety.forRun(def, data, log, ctx.signal);
    const running: RunningTask<object> = {
      taskId: task.task_id,
      projectId: task.project_id,
      taskType: task.task_type,
      data,
      attempt: ctx.attempt,
      signal: ctx.signal,
      progress: progress.report,
      safety,
    };
    let output = await this.process(processor, running, ctx.signal);
    try {
      // Before storage: a blocked output (content_blocked) is never stored nor registered.
      output = await untilAborted(safety.checkOutput(output, ctx.signal), ctx.signal);
    } catch (err) {
      await removeTempOutput(output);
      throw err;
    }
    active.finishing = true;
    try {
      await progress.milestone(0.95, 'uploading_result');
    } catch (err) {
      await removeTempOutput(output);
      throw err;
    }
    const object = await this.output.store(task, def, output);
    ctx.stored = { key: object.key, recorded: false, registering: false };
    return {
      media_key: object.key,
      content_type: output.media.contentType,
      payload_media_id: null,
      metadata: { ...output.metadata, file_size: object.size },
    };
  }

  /**
   * The processor's output, or the run's abort reason as soon as it aborts. A processor that
   * finishes after the run gave up on it has its output file removed then.
   */
  private async process(
    processor: TaskProcessor<object>,
    running: RunningTask<object>,
    signal: AbortSignal,
  ): Promise<TaskOutput> {
    const work = processor.process(running);
    try {
      return await untilAborted(work, signal);
    } catch (err) {
      work.then(removeTempOutput, () => undefined).catch(() => undefined);
      throw err;
    }
  }

  /** Why the run ended without completing, and what that means for the task and its job. */
  private async settleFailure(ctx: RunContext, err: unknown): Promise<string> {
    const { task, runId, attempt, signal, log } = ctx;
    const durationMs = Date.now() - ctx.started;
    const reason: unknown = signal.aborted ? signal.reason : err;

    if (reason instanceof RunSupersededError) {
      // Another run owns the task now: nothing here is ours to write or delete.
      this.logger.warn(log, `run ${runId} stopped: ${reason.message}`);
      return 'superseded';
    }
    if (reason instanceof TaskCancelledError) return this.settleCancelled(ctx, durationMs);
    if (reason instanceof LockLostError) return this.settleLockLost(ctx, durationMs);
    if (reason instanceof WorkerShutdownError) {
      // Not ours any more: nothing to hand back. Not recorded (Redis): the job still goes back,
      // and the takeover of this lost run charges nothing.
      if ((await this.handBack(ctx, 'shutdown')) === 'not_ours') return 'cancelled';
      return this.requeue(
        ctx.job,
        ctx.token,
        log,
        'handed back to the queue: worker shutting down',
      );
    }
    if (isRedisUnavailableError(reason)) {
      this.logger.warn(log, `Redis refused the run's writes (${errorMessage(reason)})`);
      await this.handBack(ctx, 'redis_unavailable');
      return this.postpone(ctx.job, ctx.token, Date.now() + REDIS_UNAVAILABLE_DELAY_MS);
    }

    const cls = classifyError(reason);
    const message = errorMessage(reason);
    const decision = this.retryPolicy.decide(cls, attempt, task.class_retries);
    if (decision.retry) {
      // A recorded output stays for the retry to resume from; an unrecorded one is made again.
      if (ctx.stored && !ctx.stored.recorded)
        await this.output.discard(task, ctx.stored.key, false);
      const due = new Date(Date.now() + decision.delayMs);
      const outcome = await this.settleWrite(ctx, (op) =>
        this.moves.scheduleRetry(
          task.task_id,
          runId,
          {
            error: `attempt ${attempt} failed (${cls}): ${message}; retrying in ${Math.round(decision.delayMs / 1000)} s`,
            errorClass: cls,
            nextRetryAt: due.toISOString(),
            classRetries: decision.classRetries,
          },
          { op },
        ),
      );
      if (outcome !== 'written') return outcome;
      this.logger.warn(
        log,
        `attempt ${attempt} failed (${cls}): ${message}; retry in ${decision.delayMs} ms`,
      );
      this.events.emit({
        type: 'retry_scheduled',
        task,
        attempt,
        durationMs,
        errorClass: cls,
        delayMs: decision.delayMs,
      });
      return this.postpone(ctx.job, ctx.token, due.getTime());
    }
    if (ctx.stored) {
      // Payload refusing the registration outright (credentials, validation) made no document.
      const refused = reason instanceof PayloadError && !reason.retryable;
      await this.output.discard(task, ctx.stored.key, ctx.stored.registering && !refused);
    }
    const outcome = await this.settleWrite(ctx, (op) =>
      this.moves.fail(
        task.task_id,
        runId,
        { error: message, errorClass: cls, clearResult: ctx.stored?.recorded ?? false },
        { op },
      ),
    );
    if (outcome !== 'written') return outcome;
    this.logger.error(log, `failed (${cls}, attempt ${attempt}; ${decision.reason}): ${message}`);
    this.events.emit({ type: 'failed', task, attempt, durationMs, errorClass: cls });
    throw new UnrecoverableError(message);
  }

  /**
   * A run that lost its job lock: the task goes back uncharged (one more lock loss), or fails
   * naming the lock once that happened 2 × (MAX_RETRY_ATTEMPTS + 1) times. The job is no longer
   * this call's: BullMQ must not move it (the stalled check has), hence DelayedError.
   */
  private async settleLockLost(ctx: RunContext, durationMs: number): Promise<never> {
    const { task, runId, attempt, log } = ctx;
    const losses = task.lock_losses + 1;
    const limit = 2 * (this.config.tasks.maxRetryAttempts + 1);
    if (losses > limit) {
      const message =
        `the run lost its job lock ${losses} times (its event loop blocked past ` +
        'WORKER_LOCK_DURATION_MS, or Redis lost the lock); giving up';
      if (ctx.stored) await this.output.discard(task, ctx.stored.key, ctx.stored.registering);
      await this.settleWrite(ctx, (op) =>
        this.moves.fail(
          task.task_id,
          runId,
          { error: message, errorClass: 'lock_lost', clearResult: ctx.stored?.recorded ?? false },
          { op },
        ),
      );
      this.logger.error(log, `failed: ${message}`);
      this.events.emit({ type: 'failed', task, attempt, durationMs, errorClass: 'default' });
    } else {
      await this.handBack(ctx, 'lock_lost', losses);
    }
    throw new DelayedError();
  }

  /**
   * A cancelled run: its stored output is removed (with the pending result pointing at it), but
   * only while the record is still this run's cancelled one — a manual retry's new run may be
   * writing the same key — and never while a Payload document may point at it.
   */
  private async settleCancelled(ctx: RunContext, durationMs: number): Promise<string> {
    const { task, runId, stored, log } = ctx;
    if (stored) {
      const [state] = await this.tasks.runStates([task.task_id]).catch(() => [null]);
      if (state?.status === 'cancelled' && state.runId === runId) {
        const deleted = await this.output.discard(task, stored.key, stored.registering);
        if (deleted && stored.recorded) {
          await this.moves.discardResult(task.task_id, runId).catch(() => undefined);
        }
      }
    }
    this.logger.log(log, 'stopped: cancelled');
    this.events.emit({ type: 'cancelled', task, attempt: ctx.attempt, durationMs });
    return 'cancelled';
  }

  /**
   * The run stops through no fault of the task's: the task goes back to `queued` with the
   * attempt uncharged, and the run is remembered as lost so that a takeover of it (if the
   * hand-back does not reach Redis) charges nothing either. A recorded output stays for the next
   * run to resume from; an unrecorded one is made again.
   */
  private async handBack(
    ctx: RunContext,
    reason: 'shutdown' | 'lock_lost' | 'redis_unavailable',
    lockLosses?: number,
  ): Promise<'handed_back' | 'not_ours' | 'unwritten'> {
    const { task, runId, stored, log } = ctx;
    this.runs.markLost(runId);
    if (stored && !stored.recorded) await this.output.discard(task, stored.key, false);
    try {
      await this.moves.handBack(task.task_id, runId, {
        attempts: ctx.attempt - 1,
        reason,
        lockLosses,
      });
      this.logger.warn(log, `run ${runId} handed back (${reason})`);
      return 'handed_back';
    } catch (err) {
      if (err instanceof TransitionError) return 'not_ours';
      this.logger.warn(
        log,
        `hand-back not recorded (${errorMessage(err)}); a takeover recovers it`,
      );
      return 'unwritten';
    }
  }

  /**
   * An outcome write while settling: refused means the task was cancelled or is another run's
   * (the answer says which); Redis refusing it puts the job back for a later run.
   */
  private async settleWrite(
    ctx: RunContext,
    move: (op: string) => Promise<unknown>,
  ): Promise<string> {
    try {
      await writeOutcome(move);
      return 'written';
    } catch (err) {
      if (err instanceof TaskCancelledError)
        return this.settleCancelled(ctx, Date.now() - ctx.started);
      if (err instanceof RunSupersededError) return 'superseded';
      if (isRedisUnavailableError(err)) {
        await this.handBack(ctx, 'redis_unavailable');
        return this.postpone(ctx.job, ctx.token, Date.now() + REDIS_UNAVAILABLE_DELAY_MS);
      }
      throw err;
    }
  }

  /**
   * A job whose task type this worker does not know (a rolling deploy with a newer API): back to
   * the queue for a worker that knows it, and failed once it has waited UNKNOWN_TASK_TYPE_TIMEOUT.
   */
  private async unknownType(
    job: Job<TaskJobData>,
    token: string | undefined,
    log: LogFields,
  ): Promise<string> {
    const waitedS = (Date.now() - job.timestamp) / 1000;
    const limit = this.config.tasks.unknownTypeTimeoutSeconds;
    if (waitedS >= limit) {
      const message = `no worker serves task type ${job.name} (waited ${Math.round(waitedS)} s)`;
      await this.moves.failUnqueued(job.data.task_id, message).catch((err: unknown) => {
        if (!(err instanceof TransitionError)) throw err;
      });
      this.logger.error(log, `failed: ${message}`);
      throw new UnrecoverableError(message);
    }
    const delay = Math.max(100, Math.min(30_000 * this.config.tasks.retryDelayScale, limit * 1000));
    this.logger.warn(
      log,
      `task type ${job.name} is unknown to this worker; job back in ${delay} ms`,
    );
    return this.postpone(job, token, Date.now() + delay);
  }

  /**
   * The job goes back to the queue delayed, no attempt charged. If Redis refuses that too, the
   * job's lock lapses and BullMQ's stalled check gives it back.
   */
  private async postpone(
    job: Job<TaskJobData>,
    token: string | undefined,
    dueAt: number,
  ): Promise<never> {
    try {
      await job.moveToDelayed(dueAt, token);
    } catch (err) {
      this.logger.warn(
        { task_id: job.data.task_id, project_id: job.data.project_id },
        `job ${job.id} not delayed (${errorMessage(err)}); the stalled check gives it back`,
      );
    }
    throw new DelayedError();
  }

  /** Moves the job from active straight back to wait (its priority kept). */
  private async requeue(
    job: Job<TaskJobData>,
    token: string | undefined,
    log: LogFields,
    message: string,
  ): Promise<never> {
    await job.moveToWait(token);
    this.logger.warn(log, message);
    throw new WaitingError();
  }
}

function fieldsOf(task: TaskRecord): LogFields {
  return { task_id: task.task_id, project_id: task.project_id };
}

function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 2000 ? `${message.slice(0, 2000)}…` : message;
}
