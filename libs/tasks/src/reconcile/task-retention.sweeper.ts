import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { isKeyInProject } from '@app/projects';
import {
  PARTITION_COUNT,
  partitionPrefix,
  REDIS_CLIENT,
  redisKey,
  type RedisClient,
} from '@app/redis';
import { StorageDriver } from '@app/storage';
import { TaskQueueService } from '../queue/task-queue.service';
import { ALL_QUEUES } from '../queues';
import type { TaskResultRecord } from '../records/task.record';
import { TaskRepository, type EndedTask } from '../records/task.repository';
import { PeriodicPass, takeLead } from './leader-lock';

const DAY_MS = 24 * 3600 * 1000;

/** Entries read from a partition's ended index at once. */
const PAGE = 100;

/** What one pass did, for logs and tests. */
export interface RetentionPass {
  leader: boolean;
  /** Tasks removed with everything that named them. */
  removed: string[];
  /** Tasks whose output was marked deleted (and deleted, on local storage). */
  mediaExpired: string[];
  /** Tasks whose output could not be deleted (logged; the record says it is gone). */
  mediaFailed: string[];
}

/**
 * Where the media walk of a partition's ended index stopped: the end time, and how many entries
 * of exactly that millisecond were handled already.
 */
interface MediaCursor {
  fromMs: number;
  skip: number;
}

/**
 * Seed 001 Data Retention, in the workers. With TASK_RETENTION_DAYS set, removes ended tasks
 * (completed, failed, cancelled) whose end is older than that: the record, its progress, its
 * entries in the project's indexes, its Idempotency-Key entry, one from the project's task_count
 * (SWEEP_TASK, one step in the task's partition that reads status and end again, so a task a
 * manual retry queued meanwhile stays), and its BullMQ job if BullMQ still keeps it. With
 * MEDIA_RETENTION_DAYS set, the outputs of tasks ended longer ago than that are marked deleted
 * (EXPIRE_MEDIA: `result.media_url` becomes null) and, on local storage, deleted; the outputs of
 * removed tasks too. On r2/s3 the bucket's lifecycle rule deletes them (README).
 *
 * A pass reads only what is due: each partition keeps its ended tasks sorted by end time
 * (`ended_tasks`, written by the terminal move), read with ZRANGEBYSCORE … LIMIT, partition by
 * partition, at most RETENTION_BATCH tasks each for records and outputs, resumed where the last
 * pass stopped. One worker at a time leads (a Redis lock); a pass is skipped while Redis is
 * unavailable. Tasks that ended before the index existed are not in it and are never swept.
 */
@Injectable()
export class TaskRetentionSweeper implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(TaskRetentionSweeper.name);
  private readonly passes = new PeriodicPass(this.logger, () => this.pass());
  /** The partitions the record and media walks resume at. */
  private recordPartition = 0;
  private mediaPartition = 0;

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly config: AppConfig,
    private readonly tasks: TaskRepository,
    private readonly queues: TaskQueueService,
    private readonly storage: StorageDriver,
  ) {}

  onApplicationBootstrap(): void {
    const { taskDays, mediaDays, intervalMs } = this.config.retention;
    if (taskDays === null && mediaDays === null) return;
    const media =
      mediaDays === null
        ? 'outputs kept'
        : this.config.storage.driver === 'local'
          ? `outputs deleted after ${mediaDays} days`
          : `outputs marked deleted after ${mediaDays} days (the bucket's lifecycle rule deletes them)`;
    this.logger.log(
      `retention: ${taskDays === null ? 'records kept' : `records removed ${taskDays} days after their end`}, ${media}`,
    );
    this.passes.start(intervalMs);
  }

  async onModuleDestroy(): Promise<void> {
    await this.passes.stop();
  }

  /** One pass at `now` (ms; exposed for tests and operators, who may set the clock). */
  async pass(now = Date.now()): Promise<RetentionPass> {
    const done: RetentionPass = { leader: false, removed: [], mediaExpired: [], mediaFailed: [] };
    // Disconnected, commands would wait for the command timeout one by one: skip the pass.
    if (this.redis.status !== 'ready') return done;
    const { taskDays, mediaDays, intervalMs } = this.config.retention;
    if (taskDays === null && mediaDays === null) return done;
    const leader = redisKey(this.config.redis.prefix, 'retention', 'leader');
    const ttl = Math.max(3 * intervalMs, 10_000);
    if (!(await takeLead(this.redis, leader, this.config.worker.id, ttl))) return done;
    done.leader = true;
    if (taskDays !== null) await this.sweepRecords(now - taskDays * DAY_MS, done);
    if (mediaDays !== null) await this.expireMedia(now - mediaDays * DAY_MS, now, done);
    if (done.removed.length + done.mediaExpired.length > 0) {
      this.logger.log(
        `removed ${done.removed.length} ended tasks, expired the outputs of ${done.mediaExpired.length}` +
          (done.mediaFailed.length > 0 ? ` (${done.mediaFailed.length} not deleted)` : ''),
      );
    }
    return done;
  }

  /**
   * Due records, oldest first, partition by partition. Every entry read leaves the due range
   * (removed, dropped as stale, or scored anew by a later end), so each page is read from the
   * start of the range.
   */
  private async sweepRecords(cutoff: number, done: RetentionPass): Promise<void> {
    const { batch } = this.config.retention;
    let checked = 0;
    for (let seen = 0; seen < PARTITION_COUNT && checked < batch;) {
      const limit = Math.min(PAGE, batch - checked);
      const due = await this.tasks.ended(this.recordPartition, -Infinity, cutoff, 0, limit);
      for (const { taskId } of due) {
        checked += 1;
        const swept = await this.tasks.sweep(taskId, cutoff);
        if (swept.outcome !== 'removed') continue;
        done.removed.push(taskId);
        this.logger.debug({ task_id: taskId, project_id: swept.projectId }, 'removed (retention)');
        // BullMQ keeps a failed job 7 days: it would name a task that no longer exists.
        if (swept.jobId && ALL_QUEUES.includes(swept.queue)) {
          await this.queues.remove(swept.queue, swept.jobId);
        }
        if (swept.result && this.config.retention.mediaDays !== null) {
          await this.deleteOutput(taskId, swept.projectId, swept.result, done);
        }
      }
      if (due.length < limit) {
        this.recordPartition = (this.recordPartition + 1) % PARTITION_COUNT;
        seen += 1;
      }
    }
  }

  /**
   * Outputs due, partition by partition from each partition's cursor (kept in Redis, so the next
   * leader goes on from there): entries stay in the index after their output is gone, until
   * their record is removed.
   */
  private async expireMedia(cutoff: number, now: number, done: RetentionPass): Promise<void> {
    const { batch } = this.config.retention;
    let checked = 0;
    for (let seen = 0; seen < PARTITION_COUNT && checked < batch;) {
      const partition = this.mediaPartition;
      const cursor = await this.mediaCursor(partition);
      const limit = Math.min(PAGE, batch - checked);
      const due = await this.tasks.ended(partition, cursor.fromMs, cutoff, cursor.skip, limit);
      for (const { taskId } of due) {
        checked += 1;
        const media = await this.tasks.expireMedia(taskId, cutoff, new Date(now));
        if (media.outcome !== 'expired') continue;
        done.mediaExpired.push(taskId);
        await this.deleteOutput(taskId, media.projectId, media.result, done);
      }
      if (due.length > 0) await this.saveMediaCursor(partition, advance(cursor, due));
      if (due.length < limit) {
        this.mediaPartition = (this.mediaPartition + 1) % PARTITION_COUNT;
        seen += 1;
      }
    }
  }

  /** Deletes a task's output on local storage; on r2/s3 the bucket's lifecycle rule does. */
  private async deleteOutput(
    taskId: string,
    projectId: string,
    result: TaskResultRecord,
    done: RetentionPass,
  ): Promise<void> {
    if (this.config.storage.driver !== 'local') return;
    const fields = { task_id: taskId, project_id: projectId };
    const key = result.media_key;
    if (!isKeyInProject(projectId, key)) {
      this.logger.warn(fields, `output ${key} is outside the project's storage: left alone`);
      return;
    }
    try {
      await this.storage.delete(key);
    } catch (err) {
      // The record already says the output is gone; the file stays for an operator.
      done.mediaFailed.push(taskId);
      this.logger.error(fields, `could not delete output ${key}: ${(err as Error).message}`);
    }
  }

  private mediaCursorKey(partition: number): string {
    return redisKey(partitionPrefix(this.config.redis.prefix, partition), 'retention', 'media');
  }

  private async mediaCursor(partition: number): Promise<MediaCursor> {
    const raw = await this.redis.get(this.mediaCursorKey(partition));
    const [fromMs, skip] = (raw ?? '').split(':').map(Number);
    return Number.isFinite(fromMs) && raw
      ? { fromMs, skip: Number.isFinite(skip) ? skip : 0 }
      : { fromMs: -Infinity, skip: 0 };
  }

  private async saveMediaCursor(partition: number, cursor: MediaCursor): Promise<void> {
    await this.redis.set(this.mediaCursorKey(partition), `${cursor.fromMs}:${cursor.skip}`);
  }
}

/**
 * The cursor after a page: the page's last end time, skipping the entries of that millisecond
 * already handled. (Were one of those removed meanwhile, an entry of the same millisecond would
 * be skipped: a tie at the millisecond is that rare.)
 */
function advance(cursor: MediaCursor, page: EndedTask[]): MediaCursor {
  const last = page[page.length - 1].endedMs;
  const atLast = page.filter((e) => e.endedMs === last).length;
  return { fromMs: last, skip: last === cursor.fromMs ? cursor.skip + atLast : atLast };
}
