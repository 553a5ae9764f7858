import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { UnsafeUrlError, UrlPolicy } from '@app/net';
import { isRedisUnavailableError, newTaskId } from '@app/redis';
import { TaskQueueService } from './queue/task-queue.service';
import { CancelBus } from './cancel/cancel-bus';
import type { TaskPriority } from './queues';
import type { TaskRecord } from './records/task.record';
import { TaskRepository, type IdempotencyWrite } from './records/task.repository';
import { TASK_MOVES } from './records/task-moves';
import { TaskStateMachine, TransitionError } from './records/task-state.machine';
import { TaskConflictError, TaskNotFoundError, TaskValidationError } from './task-errors';
import { httpUrlsIn, s3ReferenceProblems } from './task-types/input-url.validator';
import { validateTaskData } from './task-types/task-data.validator';
import { TaskDefinitions } from './task-types/task-definitions';

export interface SubmitTaskInput {
  project_id: string;
  task_type: string;
  task_data: unknown;
  priority: TaskPriority;
  callback_url?: string | null;
  metadata?: Record<string, unknown> | null;
}

/** Which projects a caller may see; null means every project. */
export type ProjectScope = readonly string[] | null;

/**
 * Submit, cancel and retry: the lifecycle moves the API makes. Every move is one atomic
 * transition of the record; the queue follows the record, never the other way round.
 */
@Injectable()
export class TaskLifecycleService {
  private readonly logger = new Logger(TaskLifecycleService.name);

  constructor(
    private readonly tasks: TaskRepository,
    private readonly moves: TaskStateMachine,
    private readonly queues: TaskQueueService,
    private readonly definitions: TaskDefinitions,
    private readonly cancels: CancelBus,
    private readonly config: AppConfig,
    private readonly urls: UrlPolicy,
  ) {}

  /**
   * Validates, creates the record (with `idempotency`, the Idempotency-Key entry in the same
   * step) and adds its job. A job that cannot be added because Redis refuses writes leaves the
   * record queued: it is accepted, and the reconciler adds its job once Redis takes writes again
   * (answering an error would make a client retry into a second task).
   */
  async submit(input: SubmitTaskInput, idempotency?: IdempotencyWrite): Promise<TaskRecord> {
    const def = this.definitions.get(input.task_type);
    if (!def) {
      throw new TaskValidationError([
        `task_type must be one of: ${this.definitions.types().join(', ')}`,
      ]);
    }
    const data = validateTaskData(def, input.task_data);
    // s3:// inputs must stay inside this project's prefix; the DTO alone cannot know the project.
    const refProblems = s3ReferenceProblems(
      input.project_id,
      data,
      this.config.storage.s3?.bucket ?? null,
    );
    if (refProblems.length > 0) throw new TaskValidationError(refProblems);
    const urlProblems = await this.unsafeUrls(data, input.callback_url ?? null);
    if (urlProblems.length > 0) throw new TaskValidationError(urlProblems);
    // QUEUE_MAX_SIZE is checked, and the job's queue position read, in the queue's slot just
    // before the create (a record and its queue live in different Redis Cluster slots).
    const position = await this.queues.reserve(def.queue, input.priority);
    const taskId = newTaskId(input.project_id);
    const jobId = TaskQueueService.jobId(taskId, 0);
    const record = await this.tasks.create(
      {
        task_id: taskId,
        project_id: input.project_id,
        task_type: def.type,
        priority: input.priority,
        task_data: { ...data } as Record<string, unknown>,
        callback_url: input.callback_url ?? null,
        metadata: input.metadata ?? null,
        estimated_duration: def.estimateDuration(data),
        queue: def.queue,
        job_id: jobId,
        created_at: new Date(),
      },
      position,
      idempotency,
    );
    await this.enqueueOrFail(record, jobId);
    this.logger.log(
      { task_id: taskId, project_id: record.project_id, queue: def.queue },
      `submitted ${def.type} priority=${record.priority}`,
    );
    return record;
  }

  /**
   * Every http(s) URL the task will fetch or call, checked by the UrlPolicy now (private,
   * loopback, link-local and metadata addresses refused unless allowed); the fetch checks again.
   */
  private async unsafeUrls(data: object, callbackUrl: string | null): Promise<string[]> {
    const urls = httpUrlsIn(data);
    if (callbackUrl) urls.push({ field: 'callback_url', url: callbackUrl });
    const problems = await Promise.all(
      urls.map(({ field, url }) =>
        this.urls.check(url, field).then(
          () => undefined,
          (err: unknown) => {
            if (err instanceof UnsafeUrlError) return `${field} is not allowed: ${err.reason}`;
            throw err;
          },
        ),
      ),
    );
    return problems.filter((p): p is string => p !== undefined);
  }

  async get(scope: ProjectScope, taskId: string): Promise<TaskRecord> {
    const task = await this.tasks.getInProject(scope, taskId);
    if (!task) throw new TaskNotFoundError(taskId);
    return task;
  }

  async cancel(scope: ProjectScope, taskId: string): Promise<TaskRecord> {
    const task = await this.get(scope, taskId);
    try {
      await this.moves.cancel(taskId);
    } catch (err) {
      throw this.conflict(err, taskId, 'cancel');
    }
    // The record says cancelled from here on; the queue and a running processor catch up.
    await this.queues.remove(task.queue, task.job_id);
    await this.cancels.publish(taskId);
    this.logger.log(
      { task_id: taskId, project_id: task.project_id },
      `cancelled (was ${task.status})`,
    );
    return this.get(scope, taskId);
  }

  /**
   * Manual retry: failed or cancelled → queued with a fresh job. QUEUE_MAX_SIZE is checked just
   * before the move (503 when full), like a submit.
   */
  async retry(scope: ProjectScope, taskId: string): Promise<TaskRecord> {
    const task = await this.get(scope, taskId);
    const retries = task.retries + 1;
    const jobId = TaskQueueService.jobId(taskId, retries);
    // A task that may not be retried is a 409 whatever the queue holds (the move checks again).
    if (!(TASK_MOVES.retry.from as readonly string[]).includes(task.status)) {
      throw new TaskConflictError(taskId, task.status, 'retry');
    }
    const queuePosition = await this.queues.reserve(task.queue, task.priority);
    try {
      await this.moves.retry(taskId, { retries, jobId, queuePosition });
    } catch (err) {
      throw this.conflict(err, taskId, 'retry');
    }
    await this.queues.remove(task.queue, task.job_id);
    const queued = await this.get(scope, taskId);
    await this.enqueueOrFail(queued, jobId);
    this.logger.log({ task_id: taskId, project_id: task.project_id }, `retried (retry ${retries})`);
    return queued;
  }

  /**
   * Adds the task's job. When Redis refuses the write (or is unreachable) the record stays
   * queued and the reconciler adds the job later; any other failure fails the record (a record
   * without a job would wait forever) and is thrown.
   */
  private async enqueueOrFail(task: TaskRecord, jobId: string): Promise<void> {
    const fields = { task_id: task.task_id, project_id: task.project_id };
    try {
      await this.queues.enqueue(task.queue, task.task_type, fields, jobId, task.priority);
    } catch (err) {
      if (isRedisUnavailableError(err)) {
        this.logger.warn(
          fields,
          `job not added (${(err as Error).message}); the reconciler adds it once Redis takes writes`,
        );
        return;
      }
      await this.moves
        .failUnqueued(task.task_id, `could not be queued: ${(err as Error).message}`)
        .catch((moveErr: Error) =>
          this.logger.error(fields, `could not be marked failed: ${moveErr.message}`),
        );
      throw err;
    }
  }

  private conflict(err: unknown, taskId: string, action: 'cancel' | 'retry'): Error {
    if (err instanceof TransitionError) {
      if (err.reason === 'not_found') return new TaskNotFoundError(taskId);
      if (err.reason === 'illegal' && err.current)
        return new TaskConflictError(taskId, err.current, action);
    }
    return err as Error;
  }
}
