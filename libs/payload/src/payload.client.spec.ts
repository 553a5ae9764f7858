import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { TestPayloadServer } from '@app/testing';
import {
  PayloadClient,
  payloadMediaType,
  type PayloadMediaUpload,
  type PayloadResilience,
} from './payload.client';
import { isDuplicateTaskIdError, PayloadError } from './payload.errors';

const FAST: PayloadResilience = {
  maxAttempts: 3,
  initialBackoffMs: 5,
  maxBackoffMs: 20,
  breakerThreshold: 4,
  halfOpenAfterMs: 300,
};

function upload(taskId: string, data = Buffer.from('jpeg bytes')): PayloadMediaUpload {
  return {
    taskId,
    projectId: 'detective_series_001',
    mediaType: payloadMediaType('image'),
    filename: 'output.jpg',
    contentType: 'image/jpeg',
    open: () => Promise.resolve(Readable.from([data.subarray(0, 3), data.subarray(3)])),
    generationMetadata: { character_description: 'Detective', seed: 7 },
    mediaUrl: 'https://media.example.com/projects/detective_series_001/image/t/output.jpg',
  };
}

async function failure(promise: Promise<unknown>): Promise<PayloadError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PayloadError);
  return err as PayloadError;
}

describe('PayloadClient', () => {
  let server: TestPayloadServer;
  let apiUrl: string;
  const client = (env: Record<string, string> = {}, resilience = FAST) =>
    new PayloadClient(
      AppConfig.fromEnv({
        API_KEYS: 'k',
        PAYLOAD_API_URL: apiUrl,
        PAYLOAD_API_KEY: 'secret-payload-key',
        PAYLOAD_TIMEOUT_MS: '300',
        ...env,
      }),
      resilience,
    );

  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));
  beforeEach(async () => {
    server = new TestPayloadServer('media', 'users API-Key secret-payload-key');
    apiUrl = await server.start();
  });
  afterEach(() => server.stop());

  it('uploads the file with the _payload fields and returns the document id', async () => {
    const data = Buffer.from([0xff, 0xd8, 0xff, 1, 2, 3, 4, 5]);
    await expect(client().registerMedia(upload('task-1', data))).resolves.toEqual({
      id: '1',
      created: true,
    });
    expect(server.docs).toHaveLength(1);
    const [doc] = server.docs;
    expect(doc.fields).toEqual({
      project_id: 'detective_series_001',
      media_type: 'character_design',
      agent_generated: true,
      generation_metadata: { character_description: 'Detective', seed: 7 },
      task_id: 'task-1',
      media_url: 'https://media.example.com/projects/detective_series_001/image/t/output.jpg',
    });
    expect(doc.file).toEqual({ filename: 'output.jpg', mimeType: 'image/jpeg', data });
    expect(server.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'GET /api/media 200',
      'POST /api/media 201',
    ]);
  });

  it('never creates a second document for the same task', async () => {
    const c = client();
    await c.registerMedia(upload('task-1'));
    await expect(c.registerMedia(upload('task-1'))).resolves.toEqual({ id: '1', created: false });
    await expect(c.findMediaByTaskId('task-1')).resolves.toBe('1');
    await expect(c.findMediaByTaskId('task-2')).resolves.toBeNull();
    expect(server.docs).toHaveLength(1);
  });

  it('two concurrent runs of one task make one document and both answer its id', async () => {
    // Both look up before either creates: the unique task_id refuses the second create.
    server.holdCreatesUntil = 2;
    const c = client();
    const [a, b] = await Promise.all([
      c.registerMedia(upload('task-1')),
      c.registerMedia(upload('task-1')),
    ]);
    expect(server.docs).toHaveLength(1);
    expect(a.id).toBe('1');
    expect(b.id).toBe('1');
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(server.requests.map((r) => `${r.method} ${r.status}`).sort()).toEqual([
      'GET 200',
      'GET 200',
      'GET 200',
      'POST 201',
      'POST 400',
    ]);
  });

  it('keeps the error of a 400 naming task_id when no document exists for the task', async () => {
    // A Payload that refuses the create over task_id yet finds no document (not a duplicate).
    const odd = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(req.method === 'GET' ? 200 : 400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            req.method === 'GET'
              ? { docs: [] }
              : {
                  errors: [
                    {
                      name: 'ValidationError',
                      message: 'The following field is invalid: task_id',
                      data: { errors: [{ path: 'task_id', message: 'This field is required.' }] },
                    },
                  ],
                },
          ),
        );
      });
    });
    await new Promise<void>((r) => odd.listen(0, '127.0.0.1', r));
    apiUrl = `http://127.0.0.1:${(odd.address() as AddressInfo).port}/api`;
    try {
      const err = await failure(client().registerMedia(upload('t')));
      expect(err).toMatchObject({ status: 400, retryable: false, invalidFields: ['task_id'] });
      expect(isDuplicateTaskIdError(err)).toBe(true);
    } finally {
      odd.closeAllConnections();
      await new Promise((r) => odd.close(r));
    }
    expect(
      isDuplicateTaskIdError(new PayloadError('x', false, 400, { invalidFields: ['title'] })),
    ).toBe(false);
    expect(isDuplicateTaskIdError(new PayloadError('HTTP 503 task_id', true, 503))).toBe(false);
  });

  it('tells whether a document points at the task media, and unknown when Payload fails', async () => {
    const c = client({}, { ...FAST, maxAttempts: 1 });
    await expect(c.mediaIsRegistered('task-1')).resolves.toBe(false);
    await c.registerMedia(upload('task-1'));
    await expect(c.mediaIsRegistered('task-1')).resolves.toBe(true);
    server.downFor = Infinity;
    await expect(c.mediaIsRegistered('task-1')).resolves.toBe('unknown');
    await expect(c.mediaIsRegistered('task-2')).resolves.toBe('unknown');
    server.downFor = 0;
    await expect(c.mediaIsRegistered('task-1', AbortSignal.abort())).resolves.toBe('unknown');
    const disabled = new PayloadClient(AppConfig.fromEnv({ API_KEYS: 'k' }), FAST);
    await expect(disabled.mediaIsRegistered('task-1')).resolves.toBe(false);
  });

  it('sends the bearer scheme when configured', async () => {
    await server.stop();
    server = new TestPayloadServer('clips', 'Bearer jwt-token');
    apiUrl = await server.start();
    const c = client({
      PAYLOAD_AUTH_SCHEME: 'bearer',
      PAYLOAD_API_KEY: 'jwt-token',
      PAYLOAD_MEDIA_COLLECTION: 'clips',
    });
    await expect(c.registerMedia(upload('t'))).resolves.toMatchObject({ created: true });
  });

  it('fails a refused key without retrying and without showing the key', async () => {
    const err = await failure(client({ PAYLOAD_API_KEY: 'wrong-key' }).registerMedia(upload('t')));
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(401);
    expect(err.message).toContain('GET /media answered HTTP 401');
    expect(err.message).not.toContain('wrong-key');
    expect(server.requests).toHaveLength(1);
  });

  it('retries 503s with backoff and succeeds once Payload is back', async () => {
    server.downFor = 2;
    await expect(client().registerMedia(upload('t'))).resolves.toEqual({ id: '1', created: true });
    expect(server.requests.map((r) => r.status)).toEqual([503, 503, 200, 201]);
  });

  it('gives up after its attempts with a retryable error', async () => {
    server.downFor = Infinity;
    const err = await failure(client().registerMedia(upload('t')));
    expect(err.retryable).toBe(true);
    expect(err.status).toBe(503);
    expect(server.requests).toHaveLength(3);
  });

  it('opens the circuit after repeated failures, failing fast, and closes it later', async () => {
    server.downFor = Infinity;
    const c = client();
    await failure(c.registerMedia(upload('t'))); // 3 failures
    await failure(c.registerMedia(upload('t'))); // 4th failure opens the circuit
    const before = server.requests.length;
    const open = await failure(c.registerMedia(upload('t')));
    expect(open.retryable).toBe(true);
    expect(open.message).toMatch(/circuit open/);
    // Failing fast is sending nothing: no request reached the server.
    expect(server.requests.length).toBe(before);

    server.downFor = 0;
    await new Promise((r) => setTimeout(r, FAST.halfOpenAfterMs + 50));
    await expect(c.registerMedia(upload('t'))).resolves.toMatchObject({ created: true });
  });

  it('times out a hanging Payload as retryable', async () => {
    const hanging = http.createServer(() => undefined);
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    apiUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/api`;
    try {
      const err = await failure(client({}, { ...FAST, maxAttempts: 1 }).findMediaByTaskId('t'));
      expect(err.retryable).toBe(true);
      expect(err.message).toMatch(/timed out after 300 ms/);
    } finally {
      hanging.closeAllConnections();
      await new Promise((r) => hanging.close(r));
    }
  });

  it('fails network errors as retryable', async () => {
    await server.stop();
    const err = await failure(client({}, { ...FAST, maxAttempts: 1 }).findMediaByTaskId('t'));
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('rethrows the caller cancel as is', async () => {
    server.downFor = Infinity;
    const reason = new Error('task cancelled');
    await expect(client().registerMedia(upload('t'), AbortSignal.abort(reason))).rejects.toBe(
      reason,
    );
    expect(server.requests).toHaveLength(0);
  });

  it('patches a media document', async () => {
    const c = client();
    const { id } = await c.registerMedia(upload('t'));
    const doc = await c.updateMedia(id, { embedding: [0.1, 0.2] });
    expect(doc).toMatchObject({ id: 1, embedding: [0.1, 0.2], task_id: 't' });
    expect(server.docs[0].patches).toEqual([{ embedding: [0.1, 0.2] }]);
    const missing = await failure(c.updateMedia('99', { x: 1 }));
    expect(missing).toMatchObject({ status: 404, retryable: false });
  });

  it('is disabled without PAYLOAD_API_URL', async () => {
    const disabled = new PayloadClient(AppConfig.fromEnv({ API_KEYS: 'k' }), FAST);
    expect(disabled.enabled).toBe(false);
    await expect(disabled.registerMedia(upload('t'))).rejects.toThrow(/not configured/);
  });
});
