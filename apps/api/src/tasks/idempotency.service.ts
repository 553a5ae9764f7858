import { createHash, randomUUID } from 'node:crypto';
import {
  BadRequestException,
  ConflictException,
  HttpStatus,
  Inject,
  Injectable,
  Logger,
  UnprocessableEntityException,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { projectPartitionPrefix, REDIS_CLIENT, redisKey, type RedisClient } from '@app/redis';
import type { IdempotencyWrite } from '@app/tasks';

export const IDEMPOTENCY_KEY_HEADER = 'idempotency-key';
export const IDEMPOTENT_REPLAYED_HEADER = 'Idempotent-Replayed';

/** 1 to 255 printable ASCII characters (space included, as the IETF draft allows any string). */
const KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

/**
 * How long a reservation lives while its first request runs. Short, so that a crashed API does
 * not block the key for the whole IDEMPOTENCY_TTL; a submit takes milliseconds.
 */
const PENDING_TTL_SECONDS = 60;

/** Deletes the reservation only if it is still the one this request made. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A key's entry: reserved while its first request runs, then done. The done entry is written by
 * the create step itself (with the task id and queue position), so a repeat finds the task even
 * when every write after the create failed.
 */
type StoredEntry =
  | { state: 'pending'; fingerprint: string; token: string }
  | {
      state: 'done';
      fingerprint: string;
      status: number;
      task_id: string;
      queue_position: number;
    };

/** The outcome of claiming a key: run the request, or answer for the task it made. */
export type IdempotencyClaim =
  | { kind: 'new'; reservation: IdempotencyReservation }
  | { kind: 'replay'; status: number; taskId: string; queuePosition: number };

export interface IdempotencyReservation {
  readonly redisKey: string;
  readonly fingerprint: string;
  readonly pendingValue: string;
}

/**
 * `Idempotency-Key` of POST /tasks/submit, per project (draft-ietf-httpapi-idempotency-key-header):
 * the first request reserves the key atomically (SET NX), the create step that makes its task
 * turns the reservation into the task's entry (same atomic step, kept for IDEMPOTENCY_TTL), and a
 * repeat with the same body gets the original response again. A repeat while the
 * first still runs is a 409, the same key with another body a 422, and a first request that
 * failed releases the key so that it can be retried. Keys are stored as SHA-256 digests.
 */
@Injectable()
export class IdempotencyService {
  private readonly logger = new Logger(IdempotencyService.name);

  constructor(
    @Inject(REDIS_CLIENT) private readonly redis: RedisClient,
    private readonly config: AppConfig,
  ) {}

  /** The header's value, checked; undefined when the request carries none. */
  parseKey(header: string | string[] | undefined): string | undefined {
    if (header === undefined) return undefined;
    if (Array.isArray(header) || !KEY_PATTERN.test(header)) {
      throw new BadRequestException([
        'Idempotency-Key must be one value of 1 to 255 printable ASCII characters',
      ]);
    }
    return header;
  }

  /** A digest of the request's meaning: the same submit hashes the same whatever its key order. */
  static fingerprint(request: unknown): string {
    return createHash('sha256').update(canonicalJson(request)).digest('hex');
  }

  async claim(projectId: string, key: string, fingerprint: string): Promise<IdempotencyClaim> {
    // In the project's partition: the create step writes it with the task, in one slot.
    const storeKey = redisKey(
      projectPartitionPrefix(this.config.redis.prefix, projectId),
      'idempotency',
      projectId,
      createHash('sha256').update(key).digest('hex'),
    );
    const pending: StoredEntry = { state: 'pending', fingerprint, token: randomUUID() };
    const pendingValue = JSON.stringify(pending);
    // Two rounds: the entry seen by GET may expire before it is read.
    for (let round = 0; round < 2; round++) {
      const set = await this.redis.set(storeKey, pendingValue, 'EX', PENDING_TTL_SECONDS, 'NX');
      if (set === 'OK') {
        return { kind: 'new', reservation: { redisKey: storeKey, fingerprint, pendingValue } };
      }
      const raw = await this.redis.get(storeKey);
      if (raw === null) continue;
      const entry = JSON.parse(raw) as StoredEntry;
      if (entry.fingerprint !== fingerprint) {
        throw new UnprocessableEntityException(
          'Idempotency-Key was already used for a different request body in this project',
        );
      }
      if (entry.state === 'pending') {
        throw new ConflictException(
          'A request with this Idempotency-Key is still being processed; retry shortly',
        );
      }
      return {
        kind: 'replay',
        status: entry.status,
        taskId: entry.task_id,
        queuePosition: entry.queue_position,
      };
    }
    throw new ConflictException(
      'A request with this Idempotency-Key is still being processed; retry shortly',
    );
  }

  /**
   * What the create step writes under the key when it creates the task: the done entry (the
   * script adds task_id and queue_position), kept for IDEMPOTENCY_TTL.
   */
  completion(reservation: IdempotencyReservation): IdempotencyWrite {
    return {
      key: reservation.redisKey,
      entry: { state: 'done', fingerprint: reservation.fingerprint, status: HttpStatus.CREATED },
      ttlSeconds: this.config.api.idempotencyTtlSeconds,
    };
  }

  /**
   * The first request failed: the key is free again, so the client may retry with it. Never
   * throws: the caller is already reporting the request's own error, and a reservation left
   * behind expires after PENDING_TTL_SECONDS.
   */
  async release(reservation: IdempotencyReservation): Promise<void> {
    try {
      await this.redis.eval(RELEASE_SCRIPT, 1, reservation.redisKey, reservation.pendingValue);
    } catch (err) {
      this.logger.warn(
        `Idempotency-Key reservation not released (${(err as Error).message}); it expires in ${PENDING_TTL_SECONDS} s`,
      );
    }
  }
}

/** JSON with object keys sorted, so that equal requests serialise equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  );
}
