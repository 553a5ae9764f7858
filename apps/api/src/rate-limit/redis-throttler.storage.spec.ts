import { SlotRecordingRedis } from '@app/testing';
import { RedisThrottlerStorage } from './redis-throttler.storage';

describe('RedisThrottlerStorage on Redis Cluster', () => {
  it("keeps a counter's two keys in one slot, under the prefix", async () => {
    const fake = new SlotRecordingRedis({ rateLimitHit: [1, 1000, 0, 0] });
    const storage = new RedisThrottlerStorage(fake.asRedis(), 'ams');
    for (const tracker of ['submit:3f2a…', 'submit:{odd}key', 'submit:}x{']) {
      expect(await storage.increment(tracker, 60_000, 10, 0, 'default')).toMatchObject({
        totalHits: 1,
        isBlocked: false,
      });
    }
    expect(fake.calls).toHaveLength(3);
    expect(fake.calls.every((c) => c.keys.every((k) => k.startsWith('ams:{ratelimit:')))).toBe(
      true,
    );
    expect(fake.crossSlot()).toEqual([]);
  });
});
