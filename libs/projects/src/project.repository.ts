import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '@app/config';
import {
  allPartitionPrefixes,
  projectPartitionPrefix,
  REDIS_CLIENT,
  redisKey,
  type RedisClient,
} from '@app/redis';
import { projectStoragePrefix } from './project-storage';

export interface ProjectRecord {
  project_id: string;
  project_name: string;
  task_count: number;
  active_tasks: number;
  pending_tasks: number;
  storage_prefix: string;
  created_at: string;
  last_activity: string;
}

/** The project's hash, in its partition (libs/redis/src/redis-partitions.ts). */
export function projectKey(prefix: string, projectId: string): string {
  return redisKey(projectPartitionPrefix(prefix, projectId), 'projects', projectId);
}

/**
 * Project records (seed 001 "Project"). They are created and counted by the task scripts, in the
 * same atomic step as the task change that moves the counters; this class reads them (the API's
 * `GET /projects/{project_id}`).
 */
@Injectable()
export class ProjectRepository {
  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly config: AppConfig,
  ) {}

  async get(projectId: string): Promise<ProjectRecord | null> {
    const h = await this.redis.hgetall(projectKey(this.config.redis.prefix, projectId));
    if (!h.project_id) return null;
    return {
      project_id: h.project_id,
      project_name: h.project_name ?? h.project_id,
      task_count: Number(h.task_count ?? 0),
      active_tasks: Number(h.active_tasks ?? 0),
      pending_tasks: Number(h.pending_tasks ?? 0),
      storage_prefix: h.storage_prefix ?? projectStoragePrefix(projectId),
      created_at: h.created_at,
      last_activity: h.last_activity,
    };
  }

  /** Projects with queued or processing tasks: the union of every partition's set. */
  async active(): Promise<string[]> {
    const sets = await Promise.all(
      allPartitionPrefixes(this.config.redis.prefix).map((p) =>
        this.redis.smembers(redisKey(p, 'projects', 'active')),
      ),
    );
    return sets.flat();
  }
}
