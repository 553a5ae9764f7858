import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { drainRequestBody } from './refused-body.drain';

const body = () => new PassThrough() as unknown as IncomingMessage & PassThrough;

describe('drainRequestBody', () => {
  it('reads to the end of the body', async () => {
    const req = body();
    const drained = drainRequestBody(req, 1000, 5000);
    req.write(Buffer.alloc(400));
    req.end(Buffer.alloc(400));
    await expect(drained).resolves.toBe('ended');
  });

  it('stops once more than maxBytes arrived', async () => {
    const req = body();
    const drained = drainRequestBody(req, 1000, 5000);
    req.write(Buffer.alloc(600));
    req.write(Buffer.alloc(600));
    await expect(drained).resolves.toBe('over-limit');
    expect(req.listenerCount('data')).toBe(0);
  });

  it('stops after the timeout when the sender stalls', async () => {
    const req = body();
    const drained = drainRequestBody(req, 1000, 50);
    req.write(Buffer.alloc(10));
    await expect(drained).resolves.toBe('timed-out');
  });

  it('stops when the connection closes, and at once with a zero bound', async () => {
    const req = body();
    const drained = drainRequestBody(req, 1000, 5000);
    req.destroy();
    await expect(drained).resolves.toBe('closed');
    await expect(drainRequestBody(body(), 0, 5000)).resolves.toBe('over-limit');
  });
});
