import { Inject, Injectable } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { REDIS_CLIENT, redisKey, type RedisClient } from '@app/redis';

/** One version of a model as a worker's ModelRepository lists it (snake_case: shown as is). */
export interface PublishedModelVersion {
  version: string;
  format: string;
  source: string;
  location: string;
  description?: string;
  license?: string;
  origin?: string;
  inputs: unknown[];
  outputs: unknown[];
  preferred_batch_sizes?: number[];
  memory_bytes?: number;
}

export interface PublishedModel {
  name: string;
  versions: PublishedModelVersion[];
}

/** What one worker published: its catalog and the backend it runs models on. */
export interface PublishedCatalog {
  worker_id: string;
  backend: string;
  published_at: string;
  models: PublishedModel[];
}

/**
 * `models:catalog`: a hash of worker id → the model catalog that worker's sources offer, written
 * at its boot (and on refresh), removed at its shutdown. Readers keep only workers that still
 * beat: a worker killed without shutdown leaves a field nobody reads.
 */
@Injectable()
export class ModelCatalogRepository {
  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly config: AppConfig,
  ) {}

  private get key(): string {
    return redisKey(this.config.redis.prefix, 'models', 'catalog');
  }

  async publish(catalog: PublishedCatalog): Promise<void> {
    await this.redis.hset(this.key, catalog.worker_id, JSON.stringify(catalog));
  }

  async remove(workerId: string): Promise<void> {
    await this.redis.hdel(this.key, workerId);
  }

  /** The catalogs of these workers (those that published one). */
  async read(workerIds: readonly string[]): Promise<PublishedCatalog[]> {
    if (workerIds.length === 0) return [];
    const rows = await this.redis.hmget(this.key, ...workerIds);
    return rows.filter((r): r is string => !!r).map((r) => JSON.parse(r) as PublishedCatalog);
  }
}
