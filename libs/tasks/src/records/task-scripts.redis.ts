import type { RedisClient } from '@app/redis';
import {
  CLAIM_RUN,
  CREATE_TASK,
  EXPIRE_MEDIA,
  MOVE_TASK,
  QUEUE_SNAPSHOT,
  RECORD_WEBHOOK_OUTCOME,
  REPORT_PROGRESS,
  SWEEP_TASK,
} from './task.scripts';

/** A Redis client with the task scripts defined as commands (EVALSHA, falling back to EVAL). */
export type TaskScriptsRedis = RedisClient & TaskScripts;

interface TaskScripts {
  taskCreate(...keysAndArgs: Array<string | number>): Promise<number>;
  taskMove(...keysAndArgs: string[]): Promise<string>;
  taskClaimRun(taskKey: string, progressKey: string, ...args: string[]): Promise<string[]>;
  taskReportProgress(
    taskKey: string,
    progressKey: string,
    ...args: string[]
  ): Promise<[string, string]>;
  taskQueueSnapshot(
    wait: string,
    prioritized: string,
    delayed: string,
    priority: number,
    limit: number,
  ): Promise<number>;
  taskRecordWebhookOutcome(
    taskKey: string,
    webhookId: string,
    patch: string,
    op: string,
  ): Promise<number>;
  taskSweep(
    taskKey: string,
    progressKey: string,
    prefix: string,
    cutoffMs: string,
  ): Promise<string[]>;
  taskExpireMedia(
    taskKey: string,
    prefix: string,
    cutoffMs: string,
    now: string,
  ): Promise<string[]>;
}

/** Defines the task scripts on `redis` once (defineCommand is per client) and returns it typed. */
export function withTaskScripts(redis: RedisClient): TaskScriptsRedis {
  if (!('taskMove' in redis)) {
    redis.defineCommand('taskCreate', { numberOfKeys: 2, lua: CREATE_TASK });
    redis.defineCommand('taskMove', { numberOfKeys: 2, lua: MOVE_TASK });
    redis.defineCommand('taskClaimRun', { numberOfKeys: 2, lua: CLAIM_RUN });
    redis.defineCommand('taskReportProgress', { numberOfKeys: 2, lua: REPORT_PROGRESS });
    redis.defineCommand('taskQueueSnapshot', { numberOfKeys: 3, lua: QUEUE_SNAPSHOT });
    redis.defineCommand('taskRecordWebhookOutcome', {
      numberOfKeys: 1,
      lua: RECORD_WEBHOOK_OUTCOME,
    });
    redis.defineCommand('taskSweep', { numberOfKeys: 2, lua: SWEEP_TASK });
    redis.defineCommand('taskExpireMedia', { numberOfKeys: 1, lua: EXPIRE_MEDIA });
  }
  return redis as TaskScriptsRedis;
}
