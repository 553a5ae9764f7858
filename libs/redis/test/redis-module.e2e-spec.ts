import { Logger } from '@nestjs/common';
import { PrivateRedisServer, testConfig, waitFor } from '@app/testing';
import { Redis } from 'ioredis';
import { createRedisClient } from '../src/redis-client.factory';
import { isRedisUnavailableError } from '../src/redis-errors';

describe('createRedisClient with a command timeout', () => {
  const server = new PrivateRedisServer();

  beforeAll(async () => {
    Logger.overrideLogger(false);
    await server.start();
  });
  afterAll(async () => {
    Logger.overrideLogger(new Logger());
    await server.stop();
  });

  it('fails a command fast while Redis is unreachable, and never sends it late', async () => {
    const config = testConfig({ REDIS_URL: server.url });
    const client = createRedisClient(config, 'spec', { commandTimeoutMs: 300 });
    try {
      await client.set('spec:before', '1');
      await server.stop();
      await waitFor(async () => (client.status !== 'ready' ? true : undefined), {
        timeoutMs: 10_000,
        what: 'the client to see the outage',
      });
      const started = Date.now();
      const err = await client.set('spec:late', '1').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isRedisUnavailableError(err)).toBe(true);
      expect((err as Error).message).toBe('Command timed out');
      // Bounded by the timeout (300 ms), with a generous margin for a loaded machine.
      expect(Date.now() - started).toBeLessThan(5000);

      await server.start();
      await waitFor(async () => (client.status === 'ready' ? true : undefined), {
        timeoutMs: 20_000,
        what: 'the client to reconnect',
      });
      // The server started empty (no persistence): only what was sent after the restart exists.
      await client.set('spec:after', '1');
      expect(await client.exists('spec:late', 'spec:after')).toBe(1);
    } finally {
      client.disconnect();
    }
  });

  it('leaves connections without a timeout waiting for the reconnect', async () => {
    const config = testConfig({ REDIS_URL: server.url });
    const client = createRedisClient(config, 'spec-blocking');
    try {
      await client.ping();
      expect(client).toBeInstanceOf(Redis);
      expect((client as Redis).options.commandTimeout).toBeUndefined();
    } finally {
      client.disconnect();
    }
  });
});
