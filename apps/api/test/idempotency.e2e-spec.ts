import {
  BadRequestException,
  ConflictException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { createRedisClient, projectPartitionPrefix } from '@app/redis';
import { cleanRedis, testConfig } from '@app/testing';
import { canonicalJson, IdempotencyService } from '../src/tasks/idempotency.service';

describe('IdempotencyService (real Redis)', () => {
  const config = testConfig({ IDEMPOTENCY_TTL: '120' });
  const redis = createRedisClient(config, 'spec');
  const service = new IdempotencyService(redis, config);
  afterAll(async () => {
    await cleanRedis(config);
    redis.disconnect();
  });

  it('reserves once; a repeat in flight is a 409; after completion it replays', async () => {
    const fp = IdempotencyService.fingerprint({ a: 1 });
    const first = await service.claim('p1', 'k', fp);
    expect(first.kind).toBe('new');
    await expect(service.claim('p1', 'k', fp)).rejects.toBeInstanceOf(ConflictException);
    if (first.kind !== 'new') throw new Error('unreachable');
    // What the create step writes under the key (it adds task_id and queue_position).
    const done = service.completion(first.reservation);
    await redis.set(
      done.key,
      JSON.stringify({ ...done.entry, task_id: 't1', queue_position: 4 }),
      'EX',
      done.ttlSeconds,
    );
    await expect(service.claim('p1', 'k', fp)).resolves.toEqual({
      kind: 'replay',
      status: 201,
      taskId: 't1',
      queuePosition: 4,
    });
    const ttl = await redis.ttl(first.reservation.redisKey);
    expect(ttl).toBeGreaterThan(100);
    expect(ttl).toBeLessThanOrEqual(120);
    // In the project's partition (the create step writes it), as a digest.
    const head = `${projectPartitionPrefix(config.redis.prefix, 'p1')}:idempotency:p1:`;
    expect(first.reservation.redisKey.slice(0, head.length)).toBe(head);
    expect(first.reservation.redisKey.slice(head.length)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('another body under the same key is a 422, also while in flight', async () => {
    const claim = await service.claim('p2', 'k', IdempotencyService.fingerprint({ a: 1 }));
    await expect(
      service.claim('p2', 'k', IdempotencyService.fingerprint({ a: 2 })),
    ).rejects.toBeInstanceOf(UnprocessableEntityException);
    expect(claim.kind).toBe('new');
  });

  it('release frees the key, but never a reservation made by someone else', async () => {
    const fp = IdempotencyService.fingerprint({ a: 1 });
    const mine = await service.claim('p3', 'k', fp);
    if (mine.kind !== 'new') throw new Error('expected a reservation');
    await service.release(mine.reservation);
    const theirs = await service.claim('p3', 'k', fp);
    expect(theirs.kind).toBe('new');
    await service.release(mine.reservation); // stale: must not free theirs
    await expect(service.claim('p3', 'k', fp)).rejects.toBeInstanceOf(ConflictException);
  });

  it('checks the header', () => {
    expect(service.parseKey(undefined)).toBeUndefined();
    expect(service.parseKey('abc DEF-123_~')).toBe('abc DEF-123_~');
    for (const bad of ['', 'x'.repeat(256), 'é', 'a\nb', ['a', 'b']])
      expect(() => service.parseKey(bad)).toThrow(BadRequestException);
  });

  it('fingerprints ignore key order but not values', () => {
    expect(canonicalJson({ b: { d: 1, c: [2, { f: 1, e: 0 }] }, a: null })).toBe(
      '{"a":null,"b":{"c":[2,{"e":0,"f":1}],"d":1}}',
    );
    expect(IdempotencyService.fingerprint({ a: 1, b: 2 })).toBe(
      IdempotencyService.fingerprint({ b: 2, a: 1 }),
    );
    expect(IdempotencyService.fingerprint({ a: 1 })).not.toBe(
      IdempotencyService.fingerprint({ a: '1' }),
    );
  });
});
