import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { deflateSync } from 'node:zlib';
import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { UrlPolicy } from '@app/net';
import { LoopbackAsPublicPolicy, TestS3Server, testSigningKeys } from '@app/testing';
import { LocalStorageDriver, S3StorageDriver } from '@app/storage';
import { InputFetchError } from './input-fetch.error';
import { InputFetcher } from './input-fetcher';

/** A real 1x1 PNG. */
const PNG_MAGIC = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

function crc32(buf: Buffer): number {
  let c = ~0;
  for (const byte of buf) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
  }
  return ~c >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A decompression bomb: a few dozen bytes whose header claims 100,000 x 100,000 pixels. */
function bombPng(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(100_000, 0);
  ihdr.writeUInt32BE(100_000, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1024))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('InputFetcher', () => {
  let server: Server;
  let base: string;
  let fetcher: InputFetcher;
  const hits: string[] = [];

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/ok.png': (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' }).end(PNG_MAGIC);
    },
    '/octet': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(PNG_MAGIC);
    },
    '/bomb.png': (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' }).end(bombPng());
    },
    '/garbage.png': (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' }).end('not really a png');
    },
    '/octet-text': (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end('hello');
    },
    '/missing.png': (_req, res) => {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
    },
    '/busy': (_req, res) => {
      res.writeHead(503).end();
    },
    '/big-declared': (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': 10_000 });
      res.end(Buffer.alloc(10_000));
    },
    '/big-chunked': (_req, res) => {
      // No Content-Length: the limit must hold while streaming.
      res.writeHead(200, { 'content-type': 'image/png' });
      let sent = 0;
      const push = () => {
        if (sent >= 64_000 || res.destroyed) return res.end();
        sent += 1000;
        res.write(Buffer.alloc(1000), () => setImmediate(push));
      };
      push();
    },
    '/page.html': (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html></html>');
    },
    '/slow': (_req, res) => {
      res.writeHead(200, { 'content-type': 'image/png' });
      res.write(PNG_MAGIC);
      setTimeout(() => res.end(), 5_000).unref();
    },
  };

  beforeAll(async () => {
    Logger.overrideLogger(false);
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      (routes[path] ?? routes['/missing.png'])(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const config = AppConfig.fromEnv({ API_KEYS: 'test-key' });
    Object.assign(config, {
      fetch: { timeoutMs: 300, maxBytes: 4096, allowPrivateUrls: true, imageMaxPixels: 1e6 },
    });
    fetcher = new InputFetcher(
      config,
      new LocalStorageDriver(config, testSigningKeys(config)),
      new UrlPolicy(config),
    );
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    Logger.overrideLogger(new Logger());
  });

  async function failure(promise: Promise<unknown>): Promise<InputFetchError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InputFetchError);
    return err as InputFetchError;
  }

  it('returns the body and its content type', async () => {
    const result = await fetcher.fetch(`${base}/ok.png?sig=secret`, {
      field: 'task_data.style_guide',
      accept: 'image',
    });
    expect(result.contentType).toBe('image/png');
    expect(result.data.equals(PNG_MAGIC)).toBe(true);
  });

  it("hands a fetched image to the run's safety check when it is on, and its verdict stops the fetch", async () => {
    const checked: Array<{ field: string; data: Buffer }> = [];
    const safety = (enabled: boolean, verdict?: Error) => ({
      enabled,
      checkInputs: jest.fn((images: readonly { field: string; data: Buffer }[]) => {
        checked.push(...images);
        return verdict ? Promise.reject(verdict) : Promise.resolve();
      }),
    });
    const on = safety(true);
    await fetcher.fetch(`${base}/ok.png`, {
      field: 'task_data.style_guide',
      accept: 'image',
      safety: on,
    });
    expect(checked).toEqual([{ field: 'task_data.style_guide', data: PNG_MAGIC }]);
    // Off (the task did not ask), or not an image: nothing is classified.
    const off = safety(false);
    await fetcher.fetch(`${base}/ok.png`, { field: 'f', accept: 'image', safety: off });
    await fetcher.fetch(`${base}/ok.png`, { field: 'f', accept: 'any', safety: on });
    expect(off.checkInputs).not.toHaveBeenCalled();
    expect(on.checkInputs).toHaveBeenCalledTimes(1);
    // A blocked image is the check's error, as is: not wrapped as a fetch failure.
    const blocked = new Error('content blocked: input image f has unsafe_score 0.9');
    await expect(
      fetcher.fetch(`${base}/ok.png`, {
        field: 'f',
        accept: 'image',
        safety: safety(true, blocked),
      }),
    ).rejects.toBe(blocked);
  });

  it('accepts octet-stream bodies whose bytes are an image', async () => {
    const result = await fetcher.fetch(`${base}/octet`, { field: 'f', accept: 'image' });
    expect(result.contentType).toBe('image/png');
    const err = await failure(fetcher.fetch(`${base}/octet-text`, { field: 'f', accept: 'image' }));
    expect(err.retryable).toBe(false);
  });

  it('refuses a decompression bomb from its header, and an undecodable image', async () => {
    const bomb = await failure(
      fetcher.fetch(`${base}/bomb.png`, {
        field: 'task_data.reference_images[0]',
        accept: 'image',
      }),
    );
    expect(bomb.retryable).toBe(false);
    expect(bomb.message).toContain('task_data.reference_images[0]');
    expect(bomb.message).toMatch(/100000x100000 .* above the limit of 1,000,000 pixels/);
    const garbage = await failure(
      fetcher.fetch(`${base}/garbage.png`, { field: 'f', accept: 'image' }),
    );
    expect(garbage.retryable).toBe(false);
    expect(garbage.message).toContain('not a decodable image');
    // Bytes fetched for no particular type are not decoded.
    await expect(fetcher.fetch(`${base}/bomb.png`, { field: 'f' })).resolves.toBeDefined();
  });

  it('fails a 404 as not retryable, naming the field and the URL without its query', async () => {
    const err = await failure(
      fetcher.fetch(`${base}/missing.png?token=secret-token`, {
        field: 'task_data.reference_images[1]',
        accept: 'image',
      }),
    );
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(404);
    expect(err.field).toBe('task_data.reference_images[1]');
    expect(err.message).toContain('task_data.reference_images[1]');
    expect(err.message).toContain(`${base}/missing.png`);
    expect(err.message).toContain('HTTP 404');
    expect(err.message).not.toContain('secret-token');
  });

  it('fails a 503 as retryable', async () => {
    const err = await failure(fetcher.fetch(`${base}/busy`, { field: 'f' }));
    expect(err.retryable).toBe(true);
    expect(err.status).toBe(503);
  });

  it('refuses a body whose Content-Length exceeds the limit', async () => {
    const err = await failure(
      fetcher.fetch(`${base}/big-declared`, { field: 'f', accept: 'image' }),
    );
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/exceeds the 4096-byte limit/);
  });

  it('stops streaming once the body exceeds the limit', async () => {
    const err = await failure(
      fetcher.fetch(`${base}/big-chunked`, { field: 'f', accept: 'image' }),
    );
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/exceeds the 4096-byte limit/);
  });

  it('refuses a content type the caller does not accept', async () => {
    const err = await failure(fetcher.fetch(`${base}/page.html`, { field: 'f', accept: 'image' }));
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('text/html');
    await expect(
      fetcher.fetch(`${base}/page.html`, { field: 'f', accept: 'any' }),
    ).resolves.toMatchObject({
      contentType: 'text/html',
    });
  });

  it('times out a slow body as retryable', async () => {
    const started = Date.now();
    const err = await failure(fetcher.fetch(`${base}/slow`, { field: 'f', accept: 'image' }));
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/timed out after 300 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('throws the caller signal reason as is when the task is cancelled', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled by user');
    setTimeout(() => controller.abort(reason), 50);
    await expect(
      fetcher.fetch(`${base}/slow`, { field: 'f', signal: controller.signal }),
    ).rejects.toBe(reason);

    const before = hits.length;
    await expect(
      fetcher.fetch(`${base}/ok.png`, { field: 'f', signal: AbortSignal.abort(reason) }),
    ).rejects.toBe(reason);
    expect(hits.length).toBe(before);
  });

  it('fails network errors as retryable and refuses non-http URLs', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));

    const refused = await failure(fetcher.fetch(`http://127.0.0.1:${port}/x.png`, { field: 'f' }));
    expect(refused.retryable).toBe(true);
    expect(refused.message).toContain('ECONNREFUSED');

    const ftp = await failure(
      fetcher.fetch('ftp://example.com/x.png', { field: 'task_data.style_guide' }),
    );
    expect(ftp.retryable).toBe(false);
    expect(ftp.message).toContain('task_data.style_guide');
    const garbage = await failure(fetcher.fetch('not a url', { field: 'f' }));
    expect(garbage.retryable).toBe(false);
  });
});

describe('InputFetcher with private addresses refused', () => {
  let server: Server;
  let port: number;
  const hits: string[] = [];
  const config = AppConfig.fromEnv({ API_KEYS: 'test-key', FETCH_TIMEOUT_MS: '2000' });

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(`${req.headers.host ?? ''}${req.url ?? ''}`);
      const url = new URL(req.url ?? '/', 'http://x');
      const to = url.searchParams.get('to');
      if (to) res.writeHead(302, { location: to }).end();
      else res.writeHead(200, { 'content-type': 'image/png' }).end(PNG_MAGIC);
    });
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('fails a loopback input as not retryable, naming the field, without a request', async () => {
    const policy = new UrlPolicy(config);
    const fetcher = new InputFetcher(
      config,
      new LocalStorageDriver(config, testSigningKeys(config)),
      policy,
    );
    const err = await fetcher
      .fetch(`http://127.0.0.1:${port}/frame.png?sig=secret`, {
        field: 'task_data.storyboard_frames[0]',
        accept: 'image',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputFetchError);
    const failure = err as InputFetchError;
    expect(failure.retryable).toBe(false);
    expect(failure.message).toContain('task_data.storyboard_frames[0]');
    expect(failure.message).toMatch(/refused: .*loopback/);
    expect(failure.message).not.toContain('secret');
    expect(hits).toHaveLength(0);
    await policy.onModuleDestroy();
  });

  it('fails an input that redirects to a private address, without following it', async () => {
    const policy = new LoopbackAsPublicPolicy(config);
    const fetcher = new InputFetcher(
      config,
      new LocalStorageDriver(config, testSigningKeys(config)),
      policy,
    );
    const ok = await fetcher.fetch(`http://127.0.0.1:${port}/a.png`, {
      field: 'f',
      accept: 'image',
    });
    expect(ok.contentType).toBe('image/png');
    const target = encodeURIComponent(`http://127.0.0.2:${port}/internal.png`);
    const err = await fetcher
      .fetch(`http://127.0.0.1:${port}/r?to=${target}`, {
        field: 'task_data.style_guide',
        accept: 'image',
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputFetchError);
    expect((err as InputFetchError).retryable).toBe(false);
    expect((err as InputFetchError).message).toMatch(
      /task_data\.style_guide.*127\.0\.0\.2.*loopback/,
    );
    expect(hits.some((h) => h.startsWith('127.0.0.2'))).toBe(false);
    await policy.onModuleDestroy();
  });
});

describe('InputFetcher with s3:// references', () => {
  const s3 = new TestS3Server('task-inputs');
  let fetcher: InputFetcher;
  let driver: S3StorageDriver;

  beforeAll(async () => {
    Logger.overrideLogger(false);
    await s3.start();
    const config = AppConfig.fromEnv({ API_KEYS: 'test-key', ...s3.env() });
    Object.assign(config, { fetch: { timeoutMs: 2000, maxBytes: 4096 } });
    driver = new S3StorageDriver(config);
    fetcher = new InputFetcher(config, driver, new UrlPolicy(config));
    await driver.put(
      'projects/p1/image/t1/ref.png',
      { kind: 'buffer', data: PNG_MAGIC },
      'image/png',
    );
    await driver.put(
      'projects/p1/image/t1/blob',
      { kind: 'buffer', data: PNG_MAGIC },
      'application/octet-stream',
    );
    await driver.put(
      'projects/p1/image/t1/big.png',
      { kind: 'buffer', data: Buffer.alloc(5000) },
      'image/png',
    );
    await driver.put(
      'projects/p2/image/t9/secret.png',
      { kind: 'buffer', data: PNG_MAGIC },
      'image/png',
    );
  });

  afterAll(async () => {
    driver.onModuleDestroy();
    await s3.stop();
    Logger.overrideLogger(new Logger());
  });

  const field = 'task_data.style_guide';

  it('reads an object of the task project from the configured bucket', async () => {
    const got = await fetcher.fetch('s3://task-inputs/projects/p1/image/t1/ref.png', {
      field,
      accept: 'image',
      projectId: 'p1',
    });
    expect(got).toEqual({ data: PNG_MAGIC, contentType: 'image/png' });
    const sniffed = await fetcher.fetch('s3://task-inputs/projects/p1/image/t1/blob', {
      field,
      accept: 'image',
      projectId: 'p1',
    });
    expect(sniffed.contentType).toBe('image/png');
  });

  it.each([
    ['s3://task-inputs/projects/p2/image/t9/secret.png', 'p1', /outside the task's project/],
    [
      's3://task-inputs/projects/p1/../p2/image/t9/secret.png',
      'p1',
      /not a valid s3:\/\/bucket\/key/,
    ],
    ['s3://task-inputs/projects/p1/image/t1/ref.png', undefined, /outside the task's project/],
    ['s3://other-bucket/projects/p1/image/t1/ref.png', 'p1', /only the bucket task-inputs/],
    ['s3://task-inputs/projects/p1/image/t1/none.png', 'p1', /no such object/],
    ['s3://task-inputs/projects/p1/image/t1/big.png', 'p1', /exceeds the 4096-byte limit/],
  ])('refuses %s (project %s) without retry', async (url, projectId, why) => {
    const err = await fetcher.fetch(url, { field, accept: 'image', projectId }).then(
      () => undefined,
      (e: unknown) => e as InputFetchError,
    );
    expect(err).toBeInstanceOf(InputFetchError);
    expect(err!.retryable).toBe(false);
    expect(err!.message).toMatch(why);
    expect(err!.message).toContain(field);
  });

  it('needs object storage for s3:// references', async () => {
    const config = AppConfig.fromEnv({ API_KEYS: 'test-key' });
    const local = new InputFetcher(
      config,
      new LocalStorageDriver(config, testSigningKeys(config)),
      new UrlPolicy(config),
    );
    await expect(
      local.fetch('s3://task-inputs/projects/p1/image/t1/ref.png', { field, projectId: 'p1' }),
    ).rejects.toThrow(/need object storage/);
  });

  it('fails as retryable when the storage server is unreachable', async () => {
    const config = AppConfig.fromEnv({
      API_KEYS: 'test-key',
      ...s3.env(),
      R2_ENDPOINT: 'http://127.0.0.1:1',
    });
    Object.assign(config, { fetch: { timeoutMs: 5000, maxBytes: 4096 } });
    const down = new S3StorageDriver(config);
    const err = await new InputFetcher(config, down, new UrlPolicy(config))
      .fetch('s3://task-inputs/projects/p1/image/t1/ref.png', { field, projectId: 'p1' })
      .then(
        () => undefined,
        (e: unknown) => e as InputFetchError,
      );
    down.onModuleDestroy();
    expect(err).toBeInstanceOf(InputFetchError);
    expect(err!.retryable).toBe(true);
  });
});
