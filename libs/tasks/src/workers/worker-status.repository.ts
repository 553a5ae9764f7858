import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { redisKey } from '@app/redis';
import { Redis } from 'ioredis';

/** Seed 001 "Worker Status"; `status` is busy while it runs a task, idle otherwise. */
export interface WorkerStatusRecord {
  worker_id: string;
  worker_type: string;
  status: 'active' | 'idle' | 'busy';
  current_task_id: string | null;
  current_task_ids: string[];
  gpu_utilization: number;
  memory_usage: number;
  tasks_completed: number;
  last_heartbeat: string;
  backend: string;
  started_at: string;
}

/** A worker drops out when it has not beaten for this long (seed 001: 5 minutes). */
export const WORKER_TTL_SECONDS = 300;

/** `workers:{id}` hashes with a TTL, and `workers:active` (sorted by last beat) to list them. */
@Injectable()
export class WorkerStatusRepository {
  constructor(
    @Inject(Redis) private readonly redis: Redis,
    private readonly config: AppConfig,
  ) {}

  private key(id: string): string {
    return redisKey(this.config.redis.prefix, 'workers', id);
  }

  private get indexKey(): string {
    return redisKey(this.config.redis.prefix, 'workers', 'active');
  }

  async beat(record: WorkerStatusRecord): Promise<void> {
    const now = Date.parse(record.last_heartbeat);
    await this.redis
      .multi()
      .hset(this.key(record.worker_id), {
        ...record,
        current_task_id: record.current_task_id ?? '',
        current_task_ids: JSON.stringify(record.current_task_ids),
      })
      .expire(this.key(record.worker_id), WORKER_TTL_SECONDS)
      .zadd(this.indexKey, now, record.worker_id)
      .zremrangebyscore(this.indexKey, '-inf', now - WORKER_TTL_SECONDS * 1000)
      .exec();
  }

  async remove(workerId: string): Promise<void> {
    await this.redis.multi().del(this.key(workerId)).zrem(this.indexKey, workerId).exec();
  }

  /** Workers that beat within the TTL, most recent first. */
  async list(): Promise<WorkerStatusRecord[]> {
    const since = Date.now() - WORKER_TTL_SECONDS * 1000;
    const ids = await this.redis.zrevrangebyscore(this.indexKey, '+inf', since);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.key(id));
    const rows = (await pipeline.exec()) ?? [];
    return rows
      .map(([, h]) => h as Record<string, string>)
      .filter((h) => h.worker_id)
      .map((h) => ({
        worker_id: h.worker_id,
        worker_type: h.worker_type,
        status: h.status as WorkerStatusRecord['status'],
        current_task_id: h.current_task_id || null,
        current_task_ids: JSON.parse(h.current_task_ids || '[]') as string[],
        gpu_utilization: Number(h.gpu_utilization),
        memory_usage: Number(h.memory_usage),
        tasks_completed: Number(h.tasks_completed),
        last_heartbeat: h.last_heartbeat,
        backend: h.backend,
        started_at: h.started_at,
      }));
  }
}
