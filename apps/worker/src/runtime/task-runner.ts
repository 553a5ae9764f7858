import { rm } from 'node:fs/promises';
import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { PayloadClient, payloadMediaType } from '@app/payload';
import { isKeyInProject, mediaOutputKey, type MediaKind } from '@app/projects';
import { StorageDriver, type StoredObject } from '@app/storage';
import {
  TaskDefinitions,
  TaskRepository,
  TransitionError,
  untilAborted,
  validateTaskData,
  type TaskDefinition,
  type TaskJobData,
  type TaskRecord,
  type TaskResultRecord,
} from '@app/tasks';
import { DelayedError, UnrecoverableError, WaitingError, type Job } from 'bullmq';
import { ProcessorRegistry } from './processor.registry';
import {
  classifyError,
  isRetryable,
  retryDelayMs,
  TaskCancelledError,
  TaskTimeoutError,
} from './task-errors';
import { TaskEvents } from './task-events';
import type { RunningTask, TaskOutput } from './task-processor';
import { STALLED_LIMIT_REASON, WorkerShutdownError } from './worker-shutdown.errors';

/** A run in this process, reachable by task id for cancels. */
interface ActiveRun {
  readonly runId: string;
  readonly projectId: string;
  readonly controller: AbortController;
  /** Settles once the run has recorded its outcome (or handed the task back). */
  readonly finished: Promise<void>;
}

/** The output of a run that reached storage, and whether the record already points at it. */
interface StoredOutput {
  key: string;
  /** The record holds it as a pending result: a retry may resume from registration. */
  recorded: boolean;
}

/**
 * Progress reports closer together than this are coalesced: a processor's report of the same
 * step as its previous one is dropped when that one reached the record less than this ago.
 * The runner's own `uploading_result` step (after the processor returns) is skipped, too, when
 * the record got progress less than this ago: a run that short completes (progress 1 and its
 * final step) straight after; users polling a longer run still see `uploading_result`.
 */
const PROGRESS_MIN_INTERVAL_MS = 200;

/**
 * Owns all bookkeeping around a processor: claims the task, reports progress, enforces the time
 * limit, stores the output, records the outcome and schedules automatic retries. Processors only
 * compute.
 */
@Injectable()
export class TaskRunner {
  private readonly logger = new Logger(TaskRunner.name);
  private readonly active = new Map<string, ActiveRun>();
  private completed = 0;
  /** Set when the worker shuts down past its grace: every run, even one starting now, goes back. */
  private handingBack = false;

  constructor(
    private readonly tasks: TaskRepository,
    private readonly definitions: TaskDefinitions,
    private readonly registry: ProcessorRegistry,
    private readonly storage: StorageDriver,
    private readonly config: AppConfig,
    private readonly events: TaskEvents,
    private readonly payload: PayloadClient,
  ) {}

  /** Task ids running here now. */
  activeTaskIds(): string[] {
    return [...this.active.keys()];
  }

  tasksCompleted(): number {
    return this.completed;
  }

  /** Aborts a run held by this process (cancel broadcast or status check). */
  abort(taskId: string, reason: Error): boolean {
    const run = this.active.get(taskId);
    if (!run || run.controller.signal.aborted) return false;
    this.logger.log(`task_id=${taskId} project_id=${run.projectId} aborting: ${reason.message}`);
    run.controller.abort(reason);
    return true;
  }

  /** Runs that the store no longer lets continue (cancelled, taken over) are aborted. */
  async reconcile(): Promise<void> {
    for (const [taskId, run] of this.active) {
      const task = await this.tasks.get(taskId);
      if (!task || task.status !== 'processing' || task.run_id !== run.runId) {
        this.abort(taskId, new TaskCancelledError());
      }
    }
  }

  /**
   * Shutdown past the grace period: stops every run of this process and hands its task back to
   * the queue (record `queued`, job back to wait, no attempt charged); runs that start from now
   * on are handed back at once. Resolves when every run has settled.
   */
  async handBackAll(): Promise<void> {
    this.handingBack = true;
    const runs = [...this.active.entries()];
    for (const [taskId] of runs) this.abort(taskId, new WorkerShutdownError());
    await Promise.all(runs.map(([, run]) => run.finished));
  }

  /**
   * BullMQ failed a job because its worker was lost more than maxStalledCount times (it fails
   * such a job when it is next fetched, without running it). The task would otherwise stay
   * queued or processing for ever: it is failed with a reason the user can act on (a manual
   * retry starts it afresh).
   */
  async jobLost(job: Job<TaskJobData>, err: Error): Promise<void> {
    if (err.message !== STALLED_LIMIT_REASON) return;
    const taskId = job.data.task_id;
    const task = await this.tasks.get(taskId);
    if (
      !task ||
      task.job_id !== job.id ||
      (task.status !== 'queued' && task.status !== 'processing')
    )
      return;
    const message =
      `the worker running this task was lost ${job.stalledCounter} times (killed, or its ` +
      'event loop blocked past the job lock); giving up';
    try {
      await this.tasks.transition(
        taskId,
        'failed',
        { error: message, completed_at: new Date().toISOString() },
        { from: ['queued', 'processing'] },
      );
    } catch (transitionErr) {
      if (transitionErr instanceof TransitionError) return;
      throw transitionErr;
    }
    this.logger.error(`task_id=${taskId} project_id=${task.project_id} failed: ${message}`);
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
    // The job's name is its task type (TaskQueueService.enqueue): checked before the record is
    // touched, so a task this worker cannot run is never marked processing.
    const def = this.definitions.get(job.name);
    const processor = this.registry.get(job.name);
    if (!def || !processor) {
      throw new UnrecoverableError(`no processor for task type ${job.name} on this worker`);
    }
    if (this.handingBack) {
      // Rare (shutdown): a job whose record is gone or superseded falls through and is dropped.
      const current = await this.tasks.get(taskId);
      if (current && current.job_id === job.id) {
        const log = `task_id=${taskId} project_id=${current.project_id}`;
        return this.requeue(job, token, `${log} handed back before it started`);
      }
    }

    // One round trip checks the record and claims it (queued → processing, or processing →
    // processing: a stalled run of a lost worker is taken over).
    const start = await this.tasks.startRun(taskId, job.id!, {
      started_at: new Date().toISOString(),
      progress: 0,
      current_step: 'starting',
    });
    if (start.outcome === 'missing') {
      this.logger.warn(
        `task_id=${taskId} project_id=${job.data.project_id} job ${job.id} has no task record; dropped`,
      );
      return 'missing';
    }
    const task = start.task;
    const log = `task_id=${taskId} project_id=${task.project_id}`;
    if (start.outcome === 'superseded') {
      this.logger.warn(`${log} job ${job.id} superseded by ${task.job_id}; dropped`);
      return 'superseded';
    }
    if (start.outcome === 'illegal') {
      this.logger.log(`${log} not started: the task is ${task.status}`);
      return 'skipped';
    }
    const attempt = task.attempts;
    const runId = task.run_id!;
    if (start.previous.status === 'processing') {
      this.logger.warn(
        `${log} taking over run ${start.previous.runId ?? '?'} of a lost worker (job ${job.id})`,
      );
    }

    const controller = new AbortController();
    let settle!: () => void;
    const finished = new Promise<void>((resolve) => (settle = resolve));
    this.active.set(taskId, { runId, projectId: task.project_id, controller, finished });
    if (this.handingBack) controller.abort(new WorkerShutdownError());
    const onJobAbort = () => controller.abort(jobSignal?.reason ?? new TaskCancelledError());
    jobSignal?.addEventListener('abort', onJobAbort, { once: true });
    const limit = Math.min(def.timeoutSeconds ?? Infinity, this.config.tasks.timeoutSeconds);
    const timer = setTimeout(() => controller.abort(new TaskTimeoutError(limit)), limit * 1000);
    const started = Date.now();
    this.logger.log(`${log} started ${task.task_type} attempt ${attempt} (job ${job.id})`);
    this.events.emit({
      type: 'started',
      task,
      attempt,
      queueWaitMs: Math.max(0, started - job.timestamp),
    });

    let stored: StoredOutput | undefined;
    try {
      const data = validateTaskData(def, task.task_data);
      const progress = this.progressReporter(taskId, runId, controller, started);
      let result = await this.resumableResult(task);
      if (result) {
        stored = { key: result.media_key, recorded: true };
        this.logger.log(`${log} media already stored; resuming at registering_media`);
      } else {
        const running: RunningTask<object> = {
          taskId,
          projectId: task.project_id,
          taskType: task.task_type,
          data,
          attempt,
          signal: controller.signal,
          progress,
        };
        const output = await untilAborted(processor.process(running), controller.signal);
        await progress.milestone(0.95, 'uploading_result');
        const object = await this.store(task, def.mediaKind, output);
        stored = { key: object.key, recorded: false };
        result = {
          media_key: object.key,
          content_type: output.media.contentType,
          payload_media_id: null,
          metadata: { ...output.metadata, file_size: object.size },
        };
      }
      if (this.payload.enabled) {
        if (!stored.recorded) {
          // Recorded before registering, so a failed registration is retried from here.
          await this.tasks.transition(
            taskId,
            'processing',
            { result: { ...result, pending: 'payload' } },
            { runId, from: ['processing'] },
          );
          stored.recorded = true;
        }
        await progress(0.97, 'registering_media', true);
        const id = await this.register(task, def, result, controller.signal);
        result = { ...result, payload_media_id: id };
      }
      const { pending: _done, ...finalResult } = result;
      await this.tasks.transition(
        taskId,
        'completed',
        {
          progress: 1,
          current_step: 'upload_complete',
          completed_at: new Date().toISOString(),
          error: null,
          result: finalResult,
        },
        { runId, from: ['processing'] },
      );
      this.completed += 1;
      this.logger.log(`${log} completed in ${((Date.now() - started) / 1000).toFixed(2)} s`);
      this.events.emit({ type: 'completed', task, attempt, durationMs: Date.now() - started });
      return 'completed';
    } catch (err) {
      return await this.fail(
        job,
        token,
        task,
        runId,
        attempt,
        controller.signal,
        err,
        started,
        stored,
      );
    } finally {
      clearTimeout(timer);
      jobSignal?.removeEventListener('abort', onJobAbort);
      this.active.delete(taskId);
      settle();
    }
  }

  /**
   * The result a previous attempt stored but could not register in Payload, when its object is
   * still there; undefined means the media must be made (again).
   */
  private async resumableResult(task: TaskRecord): Promise<TaskResultRecord | undefined> {
    const result = task.result;
    if (result?.pending !== 'payload' || !isKeyInProject(task.project_id, result.media_key)) {
      return undefined;
    }
    const object = await this.storage.get(result.media_key);
    if (!object) return undefined;
    object.stream.destroy();
    return result;
  }

  /** Registers the stored media in Payload; returns the document id (existing one on a retry). */
  private async register(
    task: TaskRecord,
    def: TaskDefinition,
    result: TaskResultRecord,
    signal: AbortSignal,
  ): Promise<string> {
    const key = result.media_key;
    const started = Date.now();
    const { id, created } = await this.payload.registerMedia(
      {
        taskId: task.task_id,
        projectId: task.project_id,
        mediaType: payloadMediaType(def.mediaKind),
        filename: key.slice(key.lastIndexOf('/') + 1),
        contentType: result.content_type,
        open: async () => {
          const object = await this.storage.get(key);
          // Not a Payload error: the next attempt finds no object and makes the media again.
          if (!object) throw new Error(`stored media ${key} disappeared before registration`);
          return object.stream;
        },
        generationMetadata: {
          task_type: task.task_type,
          task_data: task.task_data,
          ...result.metadata,
        },
        mediaUrl: await this.storage.url(key),
      },
      signal,
    );
    this.logger.log(
      `task_id=${task.task_id} project_id=${task.project_id} ${created ? 'registered' : 'already registered'} in Payload as ${id} (${Date.now() - started} ms)`,
    );
    return id;
  }

  private async store(
    task: TaskRecord,
    kind: MediaKind,
    output: TaskOutput,
  ): Promise<StoredObject> {
    const { media } = output;
    const key = mediaOutputKey(task.project_id, kind, task.task_id, media.extension);
    try {
      return await this.storage.put(
        key,
        media.kind === 'buffer'
          ? { kind: 'buffer', data: media.data }
          : { kind: 'file', path: media.path },
        media.contentType,
      );
    } finally {
      if (media.kind === 'file') await rm(media.path, { force: true });
    }
  }

  private async fail(
    job: Job<TaskJobData>,
    token: string | undefined,
    task: TaskRecord,
    runId: string,
    attempt: number,
    signal: AbortSignal,
    err: unknown,
    started: number,
    stored?: StoredOutput,
  ): Promise<string> {
    const durationMs = Date.now() - started;
    const log = `task_id=${task.task_id} project_id=${task.project_id}`;
    const reason = signal.aborted ? (signal.reason as unknown) : err;
    if (reason instanceof TaskCancelledError || (await this.isNoLongerOurs(task.task_id, runId))) {
      if (stored) await this.discardCancelled(task, runId, stored.key);
      this.logger.log(`${log} stopped: cancelled`);
      this.events.emit({ type: 'cancelled', task, attempt, durationMs });
      return 'cancelled';
    }
    if (reason instanceof WorkerShutdownError) {
      return this.handBack(job, token, task, runId, attempt, stored);
    }
    const cls = classifyError(reason);
    const message = errorMessage(reason);
    const retriesLeft = this.config.tasks.maxRetryAttempts - (attempt - 1);
    if (isRetryable(cls) && retriesLeft > 0) {
      // A recorded output stays for the retry to resume from; an unrecorded one is made again.
      if (stored && !stored.recorded) await this.deleteQuietly(task, stored.key);
      const delay = retryDelayMs(cls, attempt, this.config.tasks.retryDelayScale);
      try {
        await this.tasks.transition(
          task.task_id,
          'queued',
          {
            run_id: null,
            progress: 0,
            current_step: 'waiting_for_retry',
            error: `attempt ${attempt} failed (${cls}): ${message}; retrying in ${Math.round(delay / 1000)} s`,
          },
          { runId, from: ['processing'] },
        );
      } catch (transitionErr) {
        if (transitionErr instanceof TransitionError) return 'cancelled';
        throw transitionErr;
      }
      this.logger.warn(
        `${log} attempt ${attempt} failed (${cls}): ${message}; retry in ${delay} ms`,
      );
      this.events.emit({
        type: 'retry_scheduled',
        task,
        attempt,
        durationMs,
        errorClass: cls,
        delayMs: delay,
      });
      await job.moveToDelayed(Date.now() + delay, token);
      throw new DelayedError();
    }
    if (stored) await this.deleteQuietly(task, stored.key);
    try {
      await this.tasks.transition(
        task.task_id,
        'failed',
        {
          error: message,
          completed_at: new Date().toISOString(),
          run_id: runId,
          ...(stored?.recorded ? { result: null } : {}),
        },
        { runId, from: ['processing'] },
      );
    } catch (transitionErr) {
      if (transitionErr instanceof TransitionError) return 'cancelled';
      throw transitionErr;
    }
    this.logger.error(`${log} failed (${cls}, attempt ${attempt}): ${message}`);
    this.events.emit({ type: 'failed', task, attempt, durationMs, errorClass: cls });
    throw new UnrecoverableError(message);
  }

  /**
   * A run stopped by the worker's shutdown: the task goes back to `queued` with the attempt
   * uncharged, and its job straight back to wait, so another worker starts it at once. A
   * recorded output stays for that run to resume from; an unrecorded one is made again.
   */
  private async handBack(
    job: Job<TaskJobData>,
    token: string | undefined,
    task: TaskRecord,
    runId: string,
    attempt: number,
    stored?: StoredOutput,
  ): Promise<string> {
    const log = `task_id=${task.task_id} project_id=${task.project_id}`;
    if (stored && !stored.recorded) await this.deleteQuietly(task, stored.key);
    try {
      await this.tasks.transition(
        task.task_id,
        'queued',
        {
          run_id: null,
          attempts: attempt - 1,
          progress: 0,
          current_step: 'requeued_after_shutdown',
        },
        { runId, from: ['processing'] },
      );
    } catch (transitionErr) {
      if (transitionErr instanceof TransitionError) return 'cancelled';
      throw transitionErr;
    }
    return this.requeue(job, token, `${log} handed back to the queue: worker shutting down`);
  }

  /** Moves the job from active straight back to wait (its priority kept). */
  private async requeue(
    job: Job<TaskJobData>,
    token: string | undefined,
    message: string,
  ): Promise<never> {
    await job.moveToWait(token);
    this.logger.warn(message);
    throw new WaitingError();
  }

  /**
   * Output of a run that was cancelled is removed, with the pending result pointing at it. Not
   * when another run took the task over: that run may be resuming from this very object.
   */
  private async discardCancelled(task: TaskRecord, runId: string, key: string): Promise<void> {
    const current = await this.tasks.get(task.task_id);
    if (current?.status !== 'cancelled' || current.run_id !== runId) return;
    await this.deleteQuietly(task, key);
    if (current.result?.pending) {
      await this.tasks
        .transition(task.task_id, 'cancelled', { result: null }, { runId, from: ['cancelled'] })
        .catch(() => undefined); // a manual retry got there first; it clears the result itself
    }
  }

  private async deleteQuietly(task: TaskRecord, key: string): Promise<void> {
    await this.storage.delete(key).catch((err: unknown) => {
      this.logger.warn(
        `task_id=${task.task_id} project_id=${task.project_id} could not delete ${key}: ${errorMessage(err)}`,
      );
    });
  }

  private async isNoLongerOurs(taskId: string, runId: string): Promise<boolean> {
    const task = await this.tasks.get(taskId);
    return !task || task.status !== 'processing' || task.run_id !== runId;
  }

  /**
   * Progress of one run, for its processor and the runner's own steps. `writtenAt` is when the
   * last progress reached the record (the start wrote 0 `starting`).
   */
  private progressReporter(
    taskId: string,
    runId: string,
    controller: AbortController,
    writtenAt: number,
  ) {
    let last = writtenAt;
    let lastStep = '';
    const report = async (fraction: number, step: string, force = false): Promise<void> => {
      if (controller.signal.aborted) throw controller.signal.reason;
      const now = Date.now();
      if (!force && step === lastStep && now - last < PROGRESS_MIN_INTERVAL_MS) return;
      last = now;
      lastStep = step;
      const { status } = await this.tasks.reportProgress(taskId, runId, fraction, step);
      if (status !== 'processing') {
        controller.abort(new TaskCancelledError());
        throw controller.signal.reason;
      }
    };
    /**
     * A step of the runner's own: written unless the record got progress less than
     * PROGRESS_MIN_INTERVAL_MS ago (a short run; the next write follows as soon).
     */
    const milestone = async (fraction: number, step: string): Promise<void> => {
      if (Date.now() - last < PROGRESS_MIN_INTERVAL_MS) {
        if (controller.signal.aborted) throw controller.signal.reason;
        return;
      }
      await report(fraction, step, true);
    };
    return Object.assign(report, { milestone });
  }
}

function errorMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.length > 2000 ? `${message.slice(0, 2000)}…` : message;
}
