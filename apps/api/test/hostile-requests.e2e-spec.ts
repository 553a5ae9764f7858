import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { Controller, Get, Module } from '@nestjs/common';
import { TEST_API_KEY } from '@app/testing';
import { TestService } from './support/service.harness';

/** A route only this test adds: a bug on the server side, to see what a client gets then. */
@Controller('test-boom')
class BoomController {
  @Get()
  boom(): never {
    throw new Error(`internal detail: connection to redis://admin:hunter2@db failed`);
  }
}
@Module({ controllers: [BoomController] })
class BoomModule {}

const SCOPED_KEY = 'scoped-key-0123456789';

interface RawResult {
  status: number;
  body: string;
  /** Set when the server closed the connection instead of answering. */
  error?: string;
}

interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
  /** Omit the API key (default: the unscoped test key). */
  noKey?: boolean;
}

/**
 * One request on a connection of its own (no keep-alive: a refused request may close its
 * socket), with bytes exactly as given: fetch would normalise or refuse much of this.
 */
function send(port: number, req: RawRequest): Promise<RawResult> {
  const headers: Record<string, string | string[]> = {
    ...(req.noKey ? {} : { 'x-api-key': TEST_API_KEY }),
    ...(req.body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...req.headers,
  };
  return new Promise((resolve) => {
    const r = http.request(
      {
        host: '127.0.0.1',
        port,
        method: req.method ?? 'GET',
        path: req.path,
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    r.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ status: 0, body: '', error: err.code ?? err.message }),
    );
    r.end(req.body);
  });
}

const valid = (extra: Record<string, unknown> = {}, data: Record<string, unknown> = {}) => ({
  project_id: 'hostile_p',
  task_type: 'generate_image',
  task_data: { character_description: 'Detective in 1920s noir style', ...data },
  ...extra,
});
const json = (v: unknown) => JSON.stringify(v);
const nested = (depth: number, open: string, close: string, inner = '1') =>
  open.repeat(depth) + inner + close.repeat(depth);

type Case = [name: string, request: RawRequest, expected: number | number[]];

const SUBMIT = '/api/v1/tasks/submit';
const CASES: Case[] = [
  // Malformed JSON and wrong content types
  ['truncated JSON', { method: 'POST', path: SUBMIT, body: '{"project_id": ' }, 400],
  ['trailing garbage', { method: 'POST', path: SUBMIT, body: '{"a":1} x' }, 400],
  ['empty JSON body', { method: 'POST', path: SUBMIT, body: '' }, 400],
  ['JSON null', { method: 'POST', path: SUBMIT, body: 'null' }, 400],
  ['JSON string', { method: 'POST', path: SUBMIT, body: '"submit"' }, 400],
  ['NaN literal', { method: 'POST', path: SUBMIT, body: '{"priority": NaN}' }, 400],
  [
    'text/plain',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid()),
      headers: { 'content-type': 'text/plain' },
    },
    415,
  ],
  [
    'form-urlencoded',
    {
      method: 'POST',
      path: SUBMIT,
      body: 'project_id=p&task_type=generate_image',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    },
    415,
  ],
  [
    'multipart',
    {
      method: 'POST',
      path: SUBMIT,
      body: '--b\r\nContent-Disposition: form-data; name="project_id"\r\n\r\np\r\n--b--\r\n',
      headers: { 'content-type': 'multipart/form-data; boundary=b' },
    },
    415,
  ],
  [
    'XML',
    {
      method: 'POST',
      path: SUBMIT,
      body: '<task/>',
      headers: { 'content-type': 'application/xml' },
    },
    415,
  ],
  [
    'garbage content type',
    { method: 'POST', path: SUBMIT, body: json(valid()), headers: { 'content-type': ';;;' } },
    [400, 415],
  ],
  // Huge and deep
  [
    'body over 1 MiB',
    { method: 'POST', path: SUBMIT, body: json(valid({ metadata: { pad: 'x'.repeat(2 << 20) } })) },
    413,
  ],
  ['deep arrays', { method: 'POST', path: SUBMIT, body: nested(20_000, '[', ']') }, 400],
  [
    'deep metadata',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid()).replace(/}$/, `,"metadata":${nested(200, '{"a":', '}')}}`),
    },
    400,
  ],
  [
    '200k keys in metadata',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(
        valid({ metadata: Object.fromEntries(Array.from({ length: 200_000 }, (_, i) => [i, 0])) }),
      ),
    },
    413,
  ],
  // Prototype pollution
  [
    '__proto__ at the top',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid()).replace(/^{/, '{"__proto__":{"polluted":1},'),
    },
    400,
  ],
  [
    'constructor.prototype in task_data',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid({}, { constructor: { prototype: { polluted: 1 } } })),
    },
    400,
  ],
  [
    '__proto__ in metadata',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid()).replace(/}$/, ',"metadata":{"__proto__":{"polluted":1}}}'),
    },
    400,
  ],
  [
    'pollution through the query string',
    { path: '/api/v1/projects/hostile_p/tasks?__proto__[polluted]=1&constructor[prototype][p]=1' },
    400,
  ],
  // Long URLs and headers
  ['20 KB URL', { path: `/api/v1/projects/${'a'.repeat(20_000)}/tasks` }, 431],
  [
    '100 KB header',
    { path: '/api/v1/projects/hostile_p/tasks', headers: { 'x-junk': 'j'.repeat(100_000) } },
    431,
  ],
  ['2 KB project id', { path: `/api/v1/projects/${'a'.repeat(2000)}/tasks` }, [400, 414]],
  // Path traversal
  ['encoded traversal as task id', { path: '/api/v1/tasks/..%2F..%2Fetc%2Fpasswd/status' }, 400],
  ['raw traversal as task id', { path: '/api/v1/tasks/../../../etc/passwd' }, 404],
  ['dot-dot project id', { path: '/api/v1/projects/%2e%2e/tasks' }, 400],
  ['encoded traversal as project id', { path: '/api/v1/projects/..%2Fother/tasks' }, 400],
  ['backslash project id', { path: '/api/v1/projects/a%5C..%5Cb/tasks' }, 400],
  [
    'traversal in a submitted project_id',
    { method: 'POST', path: SUBMIT, body: json(valid({ project_id: '../other' })) },
    400,
  ],
  [
    'traversal in a media URL',
    {
      path: '/api/v1/media/projects/p/images/..%2F..%2F..%2Fetc/passwd?expires=9999999999&signature=x',
      noKey: true,
    },
    [400, 403, 404],
  ],
  [
    's3 key outside the project',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid({}, { style_guide: 's3://bucket/projects/other/secret.png' })),
    },
    400,
  ],
  // Unicode and NUL bytes
  ['NUL in a project id', { path: '/api/v1/projects/a%00b/tasks' }, 400],
  ['NUL in a task id', { path: `/api/v1/tasks/${randomUUID()}%00/status` }, 400],
  ['bad percent-encoding', { path: '/api/v1/projects/%E0%A4%A/tasks' }, 400],
  ['emoji project id', { path: '/api/v1/projects/%F0%9F%98%80/tasks' }, 400],
  [
    'NUL in a submitted project_id',
    { method: 'POST', path: SUBMIT, body: json(valid({ project_id: 'p\u0000' })) },
    400,
  ],
  [
    'NUL in task_type',
    { method: 'POST', path: SUBMIT, body: json(valid({ task_type: 'generate_image\u0000' })) },
    400,
  ],
  [
    'right-to-left override in project_id',
    { method: 'POST', path: SUBMIT, body: json(valid({ project_id: 'p\u202e1' })) },
    400,
  ],
  // Wrong methods
  ['PUT submit', { method: 'PUT', path: SUBMIT, body: json(valid()) }, [404, 405]],
  ['GET submit', { path: SUBMIT }, [404, 405]],
  ['PATCH status', { method: 'PATCH', path: `/api/v1/tasks/${randomUUID()}/status` }, [404, 405]],
  ['DELETE a project', { method: 'DELETE', path: '/api/v1/projects/hostile_p/tasks' }, [404, 405]],
  ['unknown method', { method: 'BREW', path: SUBMIT }, [400, 405, 501]],
  // Missing and garbage API keys
  ['no API key', { method: 'POST', path: SUBMIT, body: json(valid()), noKey: true }, 401],
  [
    'empty API key',
    { path: '/api/v1/projects/hostile_p/tasks', headers: { 'x-api-key': '' } },
    401,
  ],
  [
    '10 KB API key',
    { path: '/api/v1/projects/hostile_p/tasks', headers: { 'x-api-key': 'k'.repeat(10_000) } },
    401,
  ],
  [
    'latin-1 API key',
    { path: '/api/v1/projects/hostile_p/tasks', headers: { 'x-api-key': '\u00ff\u00fe' } },
    401,
  ],
  [
    'key as Bearer token',
    {
      path: '/api/v1/projects/hostile_p/tasks',
      noKey: true,
      headers: { authorization: `Bearer ${TEST_API_KEY}` },
    },
    401,
  ],
  [
    'valid key with a suffix',
    { path: '/api/v1/projects/hostile_p/tasks', headers: { 'x-api-key': `${TEST_API_KEY} ` } },
    [200, 401],
  ],
  [
    'valid key as prefix',
    {
      path: '/api/v1/projects/hostile_p/tasks',
      headers: { 'x-api-key': TEST_API_KEY.slice(0, -1) },
    },
    401,
  ],
  [
    'scoped key on workers status',
    { path: '/api/v1/workers/status', headers: { 'x-api-key': SCOPED_KEY } },
    403,
  ],
  [
    'scoped key on another project',
    { path: '/api/v1/projects/hostile_p/tasks', headers: { 'x-api-key': SCOPED_KEY } },
    404,
  ],
  [
    'scoped key on the queue board',
    { path: '/admin/queues/api/queues', headers: { 'x-api-key': SCOPED_KEY } },
    403,
  ],
  ['no key on the queue board', { path: '/admin/queues/api/queues', noKey: true }, 401],
  // Idempotency-Key
  [
    'oversized Idempotency-Key',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid()),
      headers: { 'idempotency-key': 'i'.repeat(4096) },
    },
    400,
  ],
  [
    'non-ASCII Idempotency-Key',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid()),
      headers: { 'idempotency-key': '\u00e9t\u00e9' },
    },
    400,
  ],
  // Types: numbers as strings, arrays for objects, and so on
  [
    'priority as a string',
    { method: 'POST', path: SUBMIT, body: json(valid({ priority: '1' })) },
    400,
  ],
  [
    'priority as a float',
    { method: 'POST', path: SUBMIT, body: json(valid({ priority: 1.5 })) },
    400,
  ],
  [
    'priority overflow',
    { method: 'POST', path: SUBMIT, body: json(valid()).replace(/}$/, ',"priority":1e400}') },
    400,
  ],
  [
    'width as a string',
    { method: 'POST', path: SUBMIT, body: json(valid({}, { width: '512' })) },
    400,
  ],
  ['negative width', { method: 'POST', path: SUBMIT, body: json(valid({}, { width: -512 })) }, 400],
  ['body is an array', { method: 'POST', path: SUBMIT, body: json([valid()]) }, 400],
  [
    'task_data is an array',
    {
      method: 'POST',
      path: SUBMIT,
      body: json(valid({ task_data: [{ character_description: 'x' }] })),
    },
    400,
  ],
  [
    'task_data is null',
    { method: 'POST', path: SUBMIT, body: json(valid({ task_data: null })) },
    400,
  ],
  [
    'metadata is an array',
    { method: 'POST', path: SUBMIT, body: json(valid({ metadata: [1, 2] })) },
    400,
  ],
  [
    'project_id is an array',
    { method: 'POST', path: SUBMIT, body: json(valid({ project_id: ['hostile_p'] })) },
    400,
  ],
  [
    'project_id is an object',
    { method: 'POST', path: SUBMIT, body: json(valid({ project_id: { $gt: '' } })) },
    400,
  ],
  [
    'task_type is a number',
    { method: 'POST', path: SUBMIT, body: json(valid({ task_type: 7 })) },
    400,
  ],
  [
    'callback to a non-http scheme',
    { method: 'POST', path: SUBMIT, body: json(valid({ callback_url: 'javascript:alert(1)' })) },
    400,
  ],
  ['page as an array', { path: '/api/v1/projects/hostile_p/tasks?page=1&page=2' }, 400],
  ['limit as text', { path: '/api/v1/projects/hostile_p/tasks?limit=ten' }, 400],
  ['limit as a huge number', { path: '/api/v1/projects/hostile_p/tasks?limit=1e308' }, 400],
];

describe('hostile and malformed requests', () => {
  const service = new TestService({
    worker: false,
    env: { API_KEYS: `${TEST_API_KEY},${SCOPED_KEY}:elsewhere` },
    extraApiModules: [BoomModule],
  });
  let before: { task_id: string };
  beforeAll(async () => {
    await service.start();
    before = (await service.http.post('/tasks/submit', valid())).body;
  });
  afterAll(() => service.close());

  it.each(CASES)('%s: a clean refusal', async (_, request, expected) => {
    const res = await send(service.config.api.port, request);
    expect(res.error).toBeUndefined();
    expect([expected].flat()).toContain(res.status);
    if (res.status === 200) return; // only where a case allows it (a trimmed header value)
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    // Our error shape, no stack trace, no secret.
    const body = JSON.parse(res.body) as Record<string, unknown>;
    expect(body).toEqual({
      statusCode: res.status,
      error: expect.any(String),
      message: expect.anything(),
    });
    expect(res.body).not.toMatch(/\bat .+:\d+:\d+|node_modules|Error:/);
    expect(res.body).not.toContain(TEST_API_KEY);
    expect(res.body).not.toContain(SCOPED_KEY);
  });

  it('a server-side bug is a bare 500: no message, stack or secret', async () => {
    const res = await send(service.config.api.port, { path: '/api/v1/test-boom' });
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body)).toEqual({ statusCode: 500, message: 'Internal server error' });
  });

  it('answers normally afterwards, lost nothing and left Object.prototype clean', async () => {
    const submit = await service.http.post('/tasks/submit', valid({ priority: 1 }));
    expect(submit.status).toBe(201);
    const status = await service.http.get(`/tasks/${submit.body.task_id}/status`);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ status: 'queued', project_id: 'hostile_p' });
    expect((await service.http.get(`/tasks/${before.task_id}/status`)).body.status).toBe('queued');
    // Only the two valid submits were stored: every hostile submit was refused.
    const list = await service.http.get('/projects/hostile_p/tasks');
    expect(list.body.pagination.total).toBe(2);
    expect((await service.http.get('/health/ready', { key: null })).status).toBe(200);
    const probe = {} as Record<string, unknown>;
    for (const name of ['polluted', 'p', 'a'])
      expect(Object.prototype.hasOwnProperty.call(Object.prototype, name)).toBe(false);
    expect(probe.polluted).toBeUndefined();
  });
});
