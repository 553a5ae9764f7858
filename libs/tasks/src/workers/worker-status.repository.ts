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

/**
 * One beat as one command (EVALSHA): writes the hash, renews its TTL, and moves the worker up
 * in the index while dropping entries older than the TTL. Atomic, like the MULTI it replaces.
 * KEYS: worker hash, index. ARGV: ttl seconds, now ms, cutoff ms, worker id, field/value pairs.
 */
const BEAT = `
redis.call('HSET', KEYS[1], unpack(ARGV, 5))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
return 1
`;

interface BeatingRedis extends Redis {
  amsWorkerBeat(
    hashKey: string,
    indexKey: string,
    ...args: Array<string | number>
  ): Promise<number>;
}

/** `workers:{id}` hashes with a TTL, and `workers:active` (sorted by last beat) to list them. */
@Injectable()
export class WorkerStatusRepository {
  constructor(
    @Inject(Redis) private readonly redis: Redis,
    private readonly config: AppConfig,
  ) {
    // defineCommand is idempotent per client; EVALSHA with a fallback to EVAL.
    if (!('amsWorkerBeat' in redis)) {
      redis.defineCommand('amsWorkerBeat', { numberOfKeys: 2, lua: BEAT });
    }
  }

  private key(id: string): string {
    return redisKey(this.config.redis.prefix, 'workers', id);
  }

  private get indexKey(): string {
    return redisKey(this.config.redis.prefix, 'workers', 'active');
  }

  /** Writes one beat in one round trip. */
  async beat(record: WorkerStatusRecord): Promise<void> {
    const now = Date.parse(record.last_heartbeat);
    await (this.redis as BeatingRedis).amsWorkerBeat(
      this.key(record.worker_id),
      this.indexKey,
      WORKER_TTL_SECONDS,
      now,
      now - WORKER_TTL_SECONDS * 1000,
      record.worker_id,
      'worker_id',
      record.worker_id,
      'worker_type',
      record.worker_type,
      'status',
      record.status,
      'current_task_id',
      record.current_task_id ?? '',
      'current_task_ids',
      JSON.stringify(record.current_task_ids),
      'gpu_utilization',
      record.gpu_utilization,
      'memory_usage',
      record.memory_usage,
      'tasks_completed',
      record.tasks_completed,
      'last_heartbeat',
      record.last_heartbeat,
      'backend',
      record.backend,
      'started_at',
      record.started_at,
    );
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
