import { Inject, Injectable } from '@nestjs/common';
import { AppConfig, type QueueId } from '@app/config';
import { groupKey, REDIS_CLIENT, type RedisClient } from '@app/redis';

/** Seed 001 WorkerStatus.status. */
export const WORKER_STATUSES = ['active', 'idle', 'busy', 'offline'] as const;
export type WorkerStatus = (typeof WORKER_STATUSES)[number];

/** One GPU of a worker as its last beat read it from nvidia-smi. */
export interface WorkerGpu {
  gpu_id: string;
  name: string;
  memory_used_bytes: number;
  memory_total_bytes: number;
  utilization_percent: number;
}

/** A model a worker holds, is loading, or failed to load (its ModelRepository's state). */
export interface WorkerModel {
  name: string;
  version?: string;
  state: 'loading' | 'ready' | 'failed';
  backend?: string;
  bytes?: number;
  load_ms?: number;
  warmup_ms?: number;
  loaded_at?: string;
  inferences?: number;
  error?: string;
}

/**
 * Seed 001 "Worker Status", as a worker writes it. `status` is what the worker says of itself:
 * `busy` when every slot it has (the sum of its queues' concurrency) runs a task, `active` when
 * some do, `idle` when none does.
 */
export interface WorkerBeat {
  worker_id: string;
  /** The queues it serves, each a seed WorkerStatus.worker_type (gpu_heavy, gpu_medium, cpu_intensive). */
  worker_type: QueueId[];
  status: Exclude<WorkerStatus, 'offline'>;
  current_task_id: string | null;
  current_task_ids: string[];
  gpu_utilization: number;
  memory_usage: number;
  tasks_completed: number;
  last_heartbeat: string;
  backend: string;
  /** What runs its tensors: `gpu` only on a CUDA device (tfjs-node-gpu), `cpu` otherwise. */
  device: 'gpu' | 'cpu';
  gpus: WorkerGpu[];
  /** Its WORKER_HEARTBEAT_INTERVAL, seconds: how soon the next beat is due. */
  heartbeat_interval: number;
  started_at: string;
  /** Models in its memory (or loading, or failed), most recently used first. */
  models: WorkerModel[];
}

/**
 * A worker as read back. `offline` is the reader's word, never written: the worker missed
 * OFFLINE_AFTER_MISSED_BEATS beats but its record has not expired yet; it runs nothing as far as
 * anyone knows (current_task_id null).
 */
export interface WorkerStatusRecord extends Omit<WorkerBeat, 'status'> {
  status: WorkerStatus;
}

/** A worker drops out when it has not beaten for this long (seed 001: 5 minutes). */
export const WORKER_TTL_SECONDS = 300;

/** A worker silent for longer than this many of its heartbeat intervals is reported offline. */
export const OFFLINE_AFTER_MISSED_BEATS = 3;

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

type BeatingRedis = RedisClient & {
  workerBeat(hashKey: string, indexKey: string, ...args: Array<string | number>): Promise<number>;
};

/** `{workers}:<id>` hashes with a TTL, and `{workers}:active` (sorted by last beat) to list them. */
@Injectable()
export class WorkerStatusRepository {
  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly config: AppConfig,
  ) {
    // defineCommand is idempotent per client; EVALSHA with a fallback to EVAL.
    if (!('workerBeat' in redis)) {
      redis.defineCommand('workerBeat', { numberOfKeys: 2, lua: BEAT });
    }
  }

  /** Worker hashes and their index share one hash tag: a beat is one script in one slot. */
  private key(id: string): string {
    return groupKey(this.config.redis.prefix, 'workers', id);
  }

  private get indexKey(): string {
    return groupKey(this.config.redis.prefix, 'workers', 'active');
  }

  /** Writes one beat in one round trip. */
  async beat(record: WorkerBeat): Promise<void> {
    const now = Date.parse(record.last_heartbeat);
    await (this.redis as BeatingRedis).workerBeat(
      this.key(record.worker_id),
      this.indexKey,
      WORKER_TTL_SECONDS,
      now,
      now - WORKER_TTL_SECONDS * 1000,
      record.worker_id,
      'worker_id',
      record.worker_id,
      'worker_type',
      record.worker_type.join(','),
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
      'device',
      record.device,
      'gpus',
      JSON.stringify(record.gpus),
      'heartbeat_interval',
      record.heartbeat_interval,
      'started_at',
      record.started_at,
      'models',
      JSON.stringify(record.models),
    );
  }

  async remove(workerId: string): Promise<void> {
    await this.redis.multi().del(this.key(workerId)).zrem(this.indexKey, workerId).exec();
  }

  /**
   * Workers that beat within the TTL, most recent first; those silent for more than
   * OFFLINE_AFTER_MISSED_BEATS of their intervals read `offline`.
   */
  async list(now = Date.now()): Promise<WorkerStatusRecord[]> {
    const since = now - WORKER_TTL_SECONDS * 1000;
    const ids = await this.redis.zrevrangebyscore(this.indexKey, '+inf', since);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.key(id));
    const rows = (await pipeline.exec()) ?? [];
    return rows
      .map(([, h]) => h as Record<string, string>)
      .filter((h) => h.worker_id)
      .map((h) => this.read(h, now));
  }

  private read(h: Record<string, string>, now: number): WorkerStatusRecord {
    // A record of an older worker has no interval: the reader's own setting stands in.
    const interval = Number(h.heartbeat_interval) || this.config.worker.heartbeatIntervalSeconds;
    const silentMs = now - Date.parse(h.last_heartbeat);
    const offline = silentMs > OFFLINE_AFTER_MISSED_BEATS * interval * 1000;
    const currentTaskIds = JSON.parse(h.current_task_ids || '[]') as string[];
    return {
      worker_id: h.worker_id,
      // Older workers wrote the same comma-separated list.
      worker_type: (h.worker_type ? h.worker_type.split(',') : []) as QueueId[],
      status: offline ? 'offline' : (h.status as WorkerStatus),
      current_task_id: offline ? null : h.current_task_id || null,
      current_task_ids: offline ? [] : currentTaskIds,
      gpu_utilization: Number(h.gpu_utilization),
      memory_usage: Number(h.memory_usage),
      tasks_completed: Number(h.tasks_completed),
      last_heartbeat: h.last_heartbeat,
      backend: h.backend,
      device: h.device === 'gpu' ? 'gpu' : 'cpu',
      gpus: JSON.parse(h.gpus || '[]') as WorkerGpu[],
      heartbeat_interval: interval,
      started_at: h.started_at,
      models: JSON.parse(h.models || '[]') as WorkerModel[],
    };
  }
}
