import http from 'node:http';
import { TEST_API_KEY } from '@app/testing';
import { TestService } from './support/service.harness';

const MiB = 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x20);

interface StreamedResult {
  status?: number;
  body?: unknown;
  headers?: http.IncomingHttpHeaders;
  /** The client's write or socket error (EPIPE, ECONNRESET), if any. */
  error?: string;
  /** Bytes the client managed to hand to its socket. */
  written: number;
}

/**
 * A client that sends its whole body before it reads anything, as Node's http.request does when
 * a caller writes then ends: the answer only counts if it arrives after the last byte.
 * `bytes: Infinity` never ends the body (it stops at `giveUpAfter` bytes).
 */
function streamBody(
  port: number,
  opts: { bytes: number; chunked?: boolean; giveUpAfter?: number },
): Promise<StreamedResult> {
  return new Promise((resolve) => {
    let written = 0;
    const result: StreamedResult = { written: 0 };
    let sent = false;
    let answered = false;
    const settle = () => {
      if (sent && answered) resolve({ ...result, written });
    };
    const fail = (err: NodeJS.ErrnoException) => {
      result.error ??= err.code ?? err.message;
      sent = true;
      // Give a response already on its way the chance to finish; it is recorded, not required.
      setTimeout(() => {
        answered = true;
        settle();
      }, 200);
    };
    const req = http.request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/api/v1/tasks/submit',
      agent: false,
      headers: {
        'content-type': 'application/json',
        'x-api-key': TEST_API_KEY,
        ...(opts.chunked ? {} : { 'content-length': String(opts.bytes) }),
      },
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        result.status = res.statusCode;
        result.headers = res.headers;
        const text = Buffer.concat(chunks).toString('utf8');
        result.body = text ? JSON.parse(text) : text;
        answered = true;
        settle();
      });
      res.on('error', fail);
    });
    req.on('error', fail);
    // 'finish': every byte of the body was handed to the operating system without error.
    req.on('finish', () => {
      sent = true;
      settle();
    });
    const limit = Math.min(opts.bytes, opts.giveUpAfter ?? Infinity);
    const pump = () => {
      while (written < limit && !req.destroyed) {
        const n = Math.min(CHUNK.length, limit - written);
        written += n;
        if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      if (req.destroyed) return;
      if (written >= opts.bytes) req.end();
      else fail(Object.assign(new Error('gave up writing'), { code: 'GAVE_UP' }));
    };
    pump();
  });
}

const TOO_LARGE = {
  statusCode: 413,
  error: 'Payload Too Large',
  message: `Request body is larger than ${MiB} bytes (API_BODY_LIMIT)`,
};

describe('a body over API_BODY_LIMIT, sent whole before the client reads', () => {
  const service = new TestService({ worker: false });
  let port: number;
  beforeAll(async () => {
    await service.start();
    port = service.config.api.port;
  });
  afterAll(() => service.close());

  it.each([2, 4, 8, 20])(
    'gets the 413 and our error body for %i MB with Content-Length',
    async (mb) => {
      const res = await streamBody(port, { bytes: mb * 1000 * 1000 });
      expect(res.error).toBeUndefined();
      expect(res).toMatchObject({ status: 413, body: TOO_LARGE });
      expect(res.headers?.connection).toBe('close');
    },
  );

  it('gets the 413 for 20 MB sent chunked (no Content-Length)', async () => {
    const res = await streamBody(port, { bytes: 20 * 1000 * 1000, chunked: true });
    expect(res.error).toBeUndefined();
    expect(res).toMatchObject({ status: 413, body: TOO_LARGE });
  });

  it('still accepts the next request', async () => {
    const ok = await service.http.post('/tasks/submit', {
      project_id: 'body_p',
      task_type: 'generate_image',
      task_data: { character_description: 'x' },
    });
    expect(ok.status).toBe(201);
  });
});

describe('the discard of a refused body is bounded', () => {
  const service = new TestService({
    worker: false,
    env: { API_BODY_DISCARD_LIMIT: String(2 * MiB) },
  });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('closes a connection whose body never ends once API_BODY_DISCARD_LIMIT is read', async () => {
    // 400 MB is far beyond the bound plus every socket buffer on the way.
    const giveUpAfter = 400 * MiB;
    const res = await streamBody(service.config.api.port, {
      bytes: Infinity,
      chunked: true,
      giveUpAfter,
    });
    expect(res.written).toBeLessThan(giveUpAfter);
    // Past the bound the server stops reading: the client sees the 413 or a closed connection.
    if (res.status !== undefined) expect(res).toMatchObject({ status: 413, body: TOO_LARGE });
    else expect(res.error).toMatch(/EPIPE|ECONNRESET/);
  });
});
