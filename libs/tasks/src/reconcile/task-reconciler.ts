import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import {
  PARTITION_COUNT,
  partitionPrefix,
  projectPartitionPrefix,
  REDIS_CLIENT,
  redisKey,
  type RedisClient,
} from '@app/redis';
import { TaskQueueService } from '../queue/task-queue.service';
import type { QueueName, TaskPriority } from '../queues';
import { TaskRepository } from '../records/task.repository';
import { TaskStateMachine, TransitionError } from '../records/task-state.machine';
import { PeriodicPass, takeLead } from './leader-lock';

/** Job states in which the job will still run (or is running) the task. */
const LIVE_JOB_STATES = new Set([
  'waiting',
  'prioritized',
  'delayed',
  'active',
  'waiting-children',
  'paused',
]);

/** How often one task is put back by the reconciler before it is failed instead. */
export const MAX_RECONCILE_REQUEUES = 10;

/** What one pass did, for logs and tests. */
export interface ReconcilePass {
  leader: boolean;
  checked: number;
  requeued: string[];
  failed: string[];
}

interface RecordState {
  status: string | null;
  jobId: string;
  queue: QueueName;
  taskType: string;
  priority: number;
  projectId: string;
  updatedMs: number;
  requeues: number;
}

/**
 * Finds tasks that nothing will ever run or end, and requeues or fails them honestly: a record
 * queued or processing whose BullMQ job is missing (an API crash between the create and the
 * add, a lost reply, Redis refusing the add), has completed (a retry whose move was lost) or has
 * failed (Redis refusing the job's writes). One worker at a time leads (a Redis lock); each pass
 * looks at RECONCILE_BATCH tasks at most, walking each active project's pending tasks oldest
 * first from where the last pass stopped, and leaves alone any task touched in the last
 * RECONCILE_GRACE_MS.
 */
@Injectable()
export class TaskReconciler implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(TaskReconciler.name);
  private readonly passes = new PeriodicPass(this.logger, () => this.pass());
  /** Where the walk of each project's index stopped (created_ms score). */
  private readonly cursors = new Map<string, number>();
  /** Where the walk of the partitions' active-project sets stopped. */
  private partition = 0;
  private projectCursor = '0';

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly config: AppConfig,
    private readonly tasks: TaskRepository,
    private readonly moves: TaskStateMachine,
    private readonly queues: TaskQueueService,
  ) {}

  onApplicationBootstrap(): void {
    const { intervalMs } = this.config.tasks.reconcile;
    if (intervalMs <= 0) return;
    this.passes.start(intervalMs);
  }

  async onModuleDestroy(): Promise<void> {
    await this.passes.stop();
  }

  private key(...parts: string[]): string {
    return redisKey(this.config.redis.prefix, ...parts);
  }

  /** One pass (exposed for tests and operators). */
  async pass(): Promise<ReconcilePass> {
    const done: ReconcilePass = { leader: false, checked: 0, requeued: [], failed: [] };
    const ttl = Math.max(3 * this.config.tasks.reconcile.intervalMs, 10_000);
    const key = this.key('reconciler', 'leader');
    if (!(await takeLead(this.redis, key, this.config.worker.id, ttl))) return done;
    done.leader = true;
    const { batch, graceMs } = this.config.tasks.reconcile;
    const before = Date.now() - graceMs;
    // One walk over every partition's active projects at most (each partition is a slot of
    // its own: one SSCAN each), resumed where the last pass stopped.
    let rounds = 0;
    let partitionsDone = 0;
    while (done.checked < batch && rounds++ < 100 + PARTITION_COUNT) {
      const [next, projects] = await this.redis.sscan(
        redisKey(partitionPrefix(this.config.redis.prefix, this.partition), 'projects', 'active'),
        this.projectCursor,
        'COUNT',
        50,
      );
      this.projectCursor = next;
      for (const projectId of projects) {
        if (done.checked >= batch) break;
        for (const id of await this.nextTasks(projectId, batch - done.checked)) {
          done.checked += 1;
          await this.check(id, before, done);
        }
      }
      if (next === '0') {
        this.partition = (this.partition + 1) % PARTITION_COUNT;
        if (++partitionsDone >= PARTITION_COUNT) break;
      }
    }
    if (done.requeued.length + done.failed.length > 0) {
      this.logger.warn(
        `requeued ${done.requeued.length}, failed ${done.failed.length} of ${done.checked} tasks checked`,
      );
    }
    return done;
  }

  /** The project's next queued and processing tasks after the cursor, oldest first. */
  private async nextTasks(projectId: string, limit: number): Promise<string[]> {
    const from = this.cursors.get(projectId) ?? -Infinity;
    const ids: Array<[string, number]> = [];
    for (const status of ['queued', 'processing']) {
      const flat = await this.redis.zrangebyscore(
        redisKey(
          projectPartitionPrefix(this.config.redis.prefix, projectId),
          'tasks',
          'by_project',
          projectId,
          'status',
          status,
        ),
        from === -Infinity ? '-inf' : `(${from}`,
        '+inf',
        'WITHSCORES',
        'LIMIT',
        0,
        limit,
      );
      for (let i = 0; i + 1 < flat.length; i += 2) ids.push([flat[i], Number(flat[i + 1])]);
    }
    ids.sort((a, b) => a[1] - b[1]);
    const page = ids.slice(0, limit);
    // A short page means the end of the project's index: the next pass starts over.
    if (page.length < limit) this.cursors.delete(projectId);
    else this.cursors.set(projectId, page[page.length - 1][1]);
    return page.map(([id]) => id);
  }

  private async read(taskId: string): Promise<RecordState> {
    const [status, jobId, queue, taskType, priority, projectId, updatedAt, requeues] =
      await this.redis.hmget(
        this.tasks.taskKey(taskId),
        'status',
        'job_id',
        'queue',
        'task_type',
        'priority',
        'project_id',
        'updated_at',
        'reconcile_requeues',
      );
    return {
      status,
      jobId: jobId ?? '',
      queue: queue as QueueName,
      taskType: taskType ?? '',
      priority: Number(priority ?? 2),
      projectId: projectId ?? '',
      updatedMs: updatedAt ? Date.parse(updatedAt) : 0,
      requeues: Number(requeues ?? 0),
    };
  }

  private async check(taskId: string, before: number, done: ReconcilePass): Promise<void> {
    const r = await this.read(taskId);
    if ((r.status !== 'queued' && r.status !== 'processing') || r.updatedMs > before) return;
    const job = await this.queues.inspect(r.queue, r.jobId);
    if (LIVE_JOB_STATES.has(job.state)) return;
    const fields = { task_id: taskId, project_id: r.projectId };
    const why =
      job.state === 'failed'
        ? `its job failed (${job.failedReason ?? 'no reason'})`
        : job.state === 'completed'
          ? 'its job ended without ending the task'
          : 'it has no job';
    try {
      if (r.requeues >= MAX_RECONCILE_REQUEUES) {
        const error = `the task was found stranded ${r.requeues + 1} times (${why}); giving up`;
        if (r.status === 'queued') await this.moves.failUnqueued(taskId, error);
        else await this.moves.failLost(taskId, error);
        done.failed.push(taskId);
        this.logger.error(fields, `failed: ${error}`);
        return;
      }
      await this.moves.requeue(taskId, r.requeues + 1);
      await this.queues.replace(
        r.queue,
        r.taskType,
        { task_id: taskId, project_id: r.projectId },
        r.jobId,
        r.priority as TaskPriority,
      );
      done.requeued.push(taskId);
      this.logger.warn(fields, `requeued: it was ${r.status} but ${why}`);
    } catch (err) {
      // Moved on meanwhile (started, cancelled): nothing to mend.
      if (err instanceof TransitionError) return;
      throw err;
    }
  }
}
