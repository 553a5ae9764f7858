import net from 'node:net';
import { Controller, Get, Module, Query } from '@nestjs/common';
import { cleanRedis } from '@app/testing';
import { Public } from '../src/auth/public.decorator';
import { TestService } from './support/service.harness';

/** A route only this test adds: answers after `ms`, and tells the test when it started. */
const started: Array<() => void> = [];
@Public()
@Controller('test-slow')
class SlowController {
  @Get()
  async slow(@Query('ms') ms: string): Promise<{ slept: number }> {
    started.splice(0).forEach((notify) => notify());
    // unref: the request the bounded drain cuts must not keep jest alive.
    await new Promise((r) => setTimeout(r, Number(ms)).unref());
    return { slept: Number(ms) };
  }
}
@Module({ controllers: [SlowController] })
class SlowModule {}

const nextStart = () => new Promise<void>((resolve) => started.push(resolve));

/** Raw HTTP/1.1 on one keep-alive socket: what arrives, in order, until the server closes it. */
function openConnection(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  socket.on('error', () => undefined);
  const send = (path: string) =>
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`);
  return { socket, send, closed, received: () => received };
}

async function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

describe('API shutdown drains in-flight requests', () => {
  it('an in-flight request finishes with 200; later requests get 503 or no connection', async () => {
    const service = await new TestService({
      worker: false,
      extraApiModules: [SlowModule],
    }).start();
    try {
      const port = service.config.api.port;
      const conn = openConnection(port);
      const running = nextStart();
      conn.send('/api/v1/test-slow?ms=1500');
      await running;
      const closing = service.api.close();
      const closedAt = { value: 0 };
      void closing.then(() => (closedAt.value = Date.now()));
      await new Promise((r) => setTimeout(r, 200));
      // A request on the busy connection during the drain: refused with 503, not dropped.
      conn.send('/api/v1/health/live');
      // A new connection: the listener is closed.
      expect(await refusesConnections(port)).toBe(true);
      expect(closedAt.value).toBe(0); // still waiting for the slow request
      const text = await conn.closed;
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
      expect(statuses).toEqual([200, 503]);
      expect(text).toContain('{"slept":1500}');
      expect(text).toContain('"statusCode":503');
      await closing;
      expect(closedAt.value).toBeGreaterThan(0);
    } finally {
      await cleanRedis(service.config);
    }
  });

  it('the drain is bounded: a request outlasting it is cut and close resolves', async () => {
    const service = await new TestService({
      worker: false,
      extraApiModules: [SlowModule],
      env: { SHUTDOWN_GRACE: '1' },
    }).start();
    try {
      const conn = openConnection(service.config.api.port);
      const running = nextStart();
      conn.send('/api/v1/test-slow?ms=20000');
      await running;
      const t0 = Date.now();
      await service.api.close();
      const elapsed = Date.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(elapsed).toBeLessThan(10_000);
      expect(await conn.closed).toBe(''); // cut without an answer
    } finally {
      await cleanRedis(service.config);
    }
  });
});
