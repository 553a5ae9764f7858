import { randomUUID } from 'node:crypto';
import { createRedisClient, projectPartitionPrefix } from '@app/redis';
import { TEST_API_KEY } from '@app/testing';
import { TestService } from './support/service.harness';

const KEY_A = 'key-a-0123456789';
const KEY_B = 'key-b-0123456789';

const image = (project_id: string, description = 'Detective in 1920s noir style') => ({
  project_id,
  task_type: 'generate_image',
  task_data: { character_description: description },
});

/** Every key the service wrote, to check that no raw secret reached Redis. */
async function allRedisEntries(service: TestService): Promise<string> {
  const redis = createRedisClient(service.config, 'spec');
  try {
    const keys = await redis.keys(`${service.config.redis.prefix}:*`);
    const parts: string[] = [...keys];
    for (const k of keys) {
      const type = await redis.type(k);
      if (type === 'string') parts.push((await redis.get(k)) ?? '');
      if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(k)));
    }
    return parts.join('\n');
  } finally {
    redis.disconnect();
  }
}

describe('project-scoped API keys', () => {
  const service = new TestService({
    worker: false,
    env: { API_KEYS: `${TEST_API_KEY},${KEY_A}:proj_a,${KEY_B}:proj_b|proj_shared` },
  });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('a scoped key submits, reads, cancels and retries in its own projects', async () => {
    const sub = await service.http.post('/tasks/submit', image('proj_a'), { key: KEY_A });
    expect(sub.status).toBe(201);
    const id = sub.body.task_id as string;
    expect((await service.http.get(`/tasks/${id}/status`, { key: KEY_A })).status).toBe(200);
    expect((await service.http.get('/projects/proj_a/tasks', { key: KEY_A })).body).toMatchObject({
      pagination: { total: 1 },
    });
    expect((await service.http.delete(`/tasks/${id}/cancel`, { key: KEY_A })).status).toBe(200);
    expect((await service.http.post(`/tasks/${id}/retry`, undefined, { key: KEY_A })).status).toBe(
      200,
    );
    const shared = await service.http.post('/tasks/submit', image('proj_shared'), { key: KEY_B });
    expect(shared.status).toBe(201);
  });

  it("another project's task is a 404 exactly like a task that does not exist", async () => {
    const ofA = (await service.http.post('/tasks/submit', image('proj_a'), { key: KEY_A })).body
      .task_id as string;
    const missing = randomUUID();
    const attempts: Array<[string, (id: string) => Promise<{ status: number; body: any }>]> = [
      ['status', (id) => service.http.get(`/tasks/${id}/status`, { key: KEY_B })],
      ['cancel', (id) => service.http.delete(`/tasks/${id}/cancel`, { key: KEY_B })],
      ['retry', (id) => service.http.post(`/tasks/${id}/retry`, undefined, { key: KEY_B })],
    ];
    for (const [, call] of attempts) {
      const foreign = await call(ofA);
      const unknown = await call(missing);
      expect(foreign.status).toBe(404);
      expect(unknown.status).toBe(404);
      expect(foreign.body).toEqual({
        statusCode: 404,
        error: 'Not Found',
        message: `Task ${ofA} not found`,
      });
      expect(unknown.body).toEqual({ ...foreign.body, message: `Task ${missing} not found` });
    }
    // Nothing happened to it: B's cancel did not reach A's task.
    const still = await service.http.get(`/tasks/${ofA}/status`, { key: KEY_A });
    expect(still.body.status).toBe('queued');
    // The unscoped key sees every project.
    expect((await service.http.get(`/tasks/${ofA}/status`)).status).toBe(200);
  });

  it('submit and list outside the scope: 404 with the shape of an unknown project', async () => {
    const submit = await service.http.post('/tasks/submit', image('proj_a'), { key: KEY_B });
    expect(submit.status).toBe(404);
    expect(submit.body).toEqual({
      statusCode: 404,
      error: 'Not Found',
      message: 'Project proj_a not found',
    });
    const neverSeen = await service.http.post('/tasks/submit', image('proj_zz'), { key: KEY_B });
    expect(neverSeen.body).toEqual({ ...submit.body, message: 'Project proj_zz not found' });
    const list = await service.http.get('/projects/proj_a/tasks', { key: KEY_B });
    expect(list.status).toBe(404);
    expect(list.body.message).toBe('Project proj_a not found');
    // The refused submit created nothing.
    const a = await service.http.get('/projects/proj_a/tasks');
    for (const t of a.body.tasks) {
      expect((await service.http.get(`/tasks/${t.task_id}/status`, { key: KEY_A })).status).toBe(
        200,
      );
    }
  });

  it('routes that show every project refuse scoped keys with 403', async () => {
    const workers = await service.http.get('/workers/status', { key: KEY_A });
    expect(workers.status).toBe(403);
    expect(workers.body).toEqual({
      statusCode: 403,
      error: 'Forbidden',
      message: 'This route needs an API key that is not limited to projects',
    });
    expect((await service.http.get('/workers/status')).status).toBe(200);
    const root = service.http.baseUrl.replace('/api/v1', '');
    const board = await fetch(`${root}/admin/queues/api/queues`, {
      headers: { 'x-api-key': KEY_A },
    });
    expect(board.status).toBe(403);
    expect(await board.json()).toMatchObject({ statusCode: 403, error: 'Forbidden' });
    const full = await fetch(`${root}/admin/queues/api/queues`, {
      headers: { 'x-api-key': TEST_API_KEY },
    });
    expect(full.status).toBe(200);
  });

  it('a key with a scope suffix is not a key: "key-a:proj_a" is refused', async () => {
    const res = await service.http.get('/projects/proj_a/tasks', { key: `${KEY_A}:proj_a` });
    expect(res.status).toBe(401);
  });
});

describe('Idempotency-Key on submit', () => {
  const service = new TestService({
    worker: false,
    env: { API_KEYS: `${TEST_API_KEY},${KEY_A}:proj_a` },
  });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  const submit = (body: unknown, key: string | undefined, apiKey?: string) =>
    service.http.post('/tasks/submit', body, {
      headers: key === undefined ? {} : { 'idempotency-key': key },
      ...(apiKey ? { key: apiKey } : {}),
    });

  it('a repeat returns the original response and creates no second task', async () => {
    const first = await submit(image('idem_p'), 'order-42');
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const again = await submit(image('idem_p'), 'order-42');
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual(first.body);
    // Key order of the body does not matter; the same meaning is the same request.
    const reordered = await submit(
      { task_data: image('x').task_data, task_type: 'generate_image', project_id: 'idem_p' },
      'order-42',
    );
    expect(reordered.body.task_id).toBe(first.body.task_id);
    const listed = await service.http.get('/projects/idem_p/tasks');
    expect(listed.body.pagination.total).toBe(1);
    // Without the header every submit is a new task.
    await submit(image('idem_p'), undefined);
    expect((await service.http.get('/projects/idem_p/tasks')).body.pagination.total).toBe(2);
  });

  it('the same key with a different body is a 422 naming the header', async () => {
    expect((await submit(image('idem_q', 'a'), 'k-1')).status).toBe(201);
    const other = await submit(image('idem_q', 'b'), 'k-1');
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ statusCode: 422, error: 'Unprocessable Entity' });
    expect(other.body.message).toMatch(/Idempotency-Key/);
    expect((await service.http.get('/projects/idem_q/tasks')).body.pagination.total).toBe(1);
  });

  it('keys are per project: the same key in another project is a new task', async () => {
    const p1 = await submit(image('idem_r1'), 'shared-key');
    const p2 = await submit(image('idem_r2'), 'shared-key');
    expect(p1.status).toBe(201);
    expect(p2.status).toBe(201);
    expect(p2.headers.get('idempotent-replayed')).toBeNull();
    expect(p2.body.task_id).not.toBe(p1.body.task_id);
  });

  it('a first request that failed releases the key for a corrected retry', async () => {
    const bad = await submit({ ...image('idem_s'), task_type: 'make_coffee' }, 'retry-me');
    expect(bad.status).toBe(400);
    const badData = await submit(
      { project_id: 'idem_s', task_type: 'generate_image', task_data: { width: 1 } },
      'retry-me',
    );
    expect(badData.status).toBe(400);
    const good = await submit(image('idem_s'), 'retry-me');
    expect(good.status).toBe(201);
    expect(good.headers.get('idempotent-replayed')).toBeNull();
    // A scoped key refused for the project never reserves the key either.
    const refused = await submit(image('idem_t'), 'scoped', KEY_A);
    expect(refused.status).toBe(404);
    expect((await submit(image('idem_t'), 'scoped')).status).toBe(201);
  });

  it('concurrent repeats: one task, every answer is it or a 409', async () => {
    const results = await Promise.all(
      Array.from({ length: 6 }, () => submit(image('idem_u'), 'burst')),
    );
    const created = results.filter((r) => r.status === 201);
    const conflicts = results.filter((r) => r.status === 409);
    expect(created.length + conflicts.length).toBe(6);
    expect(new Set(created.map((r) => r.body.task_id)).size).toBe(1);
    for (const c of conflicts) expect(c.body.message).toMatch(/still being processed/);
    expect((await service.http.get('/projects/idem_u/tasks')).body.pagination.total).toBe(1);
    const after = await submit(image('idem_u'), 'burst');
    expect(after.status).toBe(201);
    expect(after.body.task_id).toBe(created[0].body.task_id);
  });

  it.each([
    ['empty', ''],
    ['too long', 'k'.repeat(256)],
    ['control character', 'a\tb'],
  ])('a bad Idempotency-Key (%s) is a 400 naming the header', async (_, key) => {
    const res = await submit(image('idem_v'), key);
    expect(res.status).toBe(400);
    expect([res.body.message].flat().join('\n')).toMatch(/Idempotency-Key must be/);
    expect((await service.http.get('/projects/idem_v/tasks')).body.pagination.total).toBe(0);
  });

  it('a 255-character key is fine, and Redis holds only its digest', async () => {
    const key = `secret-order-${'x'.repeat(242)}`;
    expect(key).toHaveLength(255);
    expect((await submit(image('idem_w'), key)).status).toBe(201);
    const stored = await allRedisEntries(service);
    expect(stored).toContain(
      `${projectPartitionPrefix(service.config.redis.prefix, 'idem_w')}:idempotency:idem_w:`,
    );
    expect(stored).not.toContain('secret-order-');
  });
});

describe('rate limit per API key on submit', () => {
  const service = new TestService({
    worker: false,
    env: {
      API_KEYS: `${TEST_API_KEY},${KEY_A}`,
      RATE_LIMIT_SUBMIT: '3',
      RATE_LIMIT_WINDOW_SECONDS: '60',
    },
  });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('the 4th submit of a key within the window is a 429 with Retry-After', async () => {
    for (let i = 0; i < 3; i++) {
      const ok = await service.http.post('/tasks/submit', image('rl'));
      expect(ok.status).toBe(201);
      expect(ok.headers.get('x-ratelimit-limit')).toBe('3');
      expect(ok.headers.get('x-ratelimit-remaining')).toBe(String(2 - i));
    }
    const refused = await service.http.post('/tasks/submit', image('rl'));
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(refused.body).toEqual({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `Rate limit reached: 3 submits per 60 s per API key (RATE_LIMIT_SUBMIT); retry after ${retryAfter} s`,
    });
    expect((await service.http.get('/projects/rl/tasks')).body.pagination.total).toBe(3);
  });

  it('another key still submits; other routes of the limited key still answer', async () => {
    expect((await service.http.post('/tasks/submit', image('rl'), { key: KEY_A })).status).toBe(
      201,
    );
    const list = await service.http.get('/projects/rl/tasks');
    expect(list.status).toBe(200);
    expect(list.headers.get('x-ratelimit-limit')).toBeNull();
    expect((await service.http.post('/tasks/submit', image('rl'))).status).toBe(429);
  });

  it("a manual retry counts against the key's submit limit", async () => {
    const other = await service.http.post('/tasks/submit', image('rl_retry'), { key: KEY_A });
    expect(other.status).toBe(201);
    const id = other.body.task_id as string;
    expect((await service.http.delete(`/tasks/${id}/cancel`, { key: KEY_A })).status).toBe(200);
    // KEY_A has used 2 of its 3 submits: one retry more, then 429 (cancel-and-retry loops too).
    expect((await service.http.post(`/tasks/${id}/retry`, undefined, { key: KEY_A })).status).toBe(
      200,
    );
    expect((await service.http.delete(`/tasks/${id}/cancel`, { key: KEY_A })).status).toBe(200);
    const refused = await service.http.post(`/tasks/${id}/retry`, undefined, { key: KEY_A });
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await service.http.get(`/tasks/${id}/status`)).body.status).toBe('cancelled');
  });

  it('buckets live under REDIS_PREFIX and hold a digest, never the key', async () => {
    const stored = await allRedisEntries(service);
    expect(stored).toContain(`${service.config.redis.prefix}:{ratelimit:default:submit:`);
    expect(stored).not.toContain(TEST_API_KEY);
    expect(stored).not.toContain(KEY_A);
  });
});

describe('request body limit (API_BODY_LIMIT)', () => {
  const service = new TestService({ worker: false, env: { API_BODY_LIMIT: '4096' } });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('a body over the limit is a 413 in our error shape; one under it is read', async () => {
    const big = await service.http.post('/tasks/submit', image('bl', 'x'.repeat(5000)));
    expect(big.status).toBe(413);
    expect(big.body).toEqual({
      statusCode: 413,
      error: 'Payload Too Large',
      message: 'Request body is larger than 4096 bytes (API_BODY_LIMIT)',
    });
    // Under the limit the body is read, validated and stored as usual.
    const fits = await service.http.post('/tasks/submit', image('bl', 'y'.repeat(900)));
    expect(fits.status).toBe(201);
    const list = await service.http.get('/projects/bl/tasks');
    expect(list.body.pagination.total).toBe(1);
  });

  it('a body that lies about its length is refused too (chunked, no Content-Length)', async () => {
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        const part = new TextEncoder().encode(' '.repeat(1024));
        for (let i = 0; i < 8; i++) controller.enqueue(part);
        controller.enqueue(new TextEncoder().encode(JSON.stringify(image('bl'))));
        controller.close();
      },
    });
    const res = await fetch(`${service.http.baseUrl}/tasks/submit`, {
      method: 'POST',
      headers: { 'x-api-key': TEST_API_KEY, 'content-type': 'application/json' },
      body: chunks,
      duplex: 'half',
    });
    expect(res.status).toBe(413);
    expect((await service.http.get('/projects/bl/tasks')).body.pagination.total).toBe(1);
  });
});

describe('backpressure: a full queue refuses with 503 and loses nothing', () => {
  const service = new TestService({ worker: false, env: { QUEUE_MAX_SIZE: '2' } });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('503 + Retry-After when full; earlier tasks intact; other queues still open', async () => {
    const first = await service.http.post('/tasks/submit', image('bp', 'one'));
    const second = await service.http.post('/tasks/submit', image('bp', 'two'));
    expect([first.status, second.status]).toEqual([201, 201]);
    const full = await service.http.post('/tasks/submit', image('bp', 'three'), {
      headers: { 'idempotency-key': 'third' },
    });
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('30');
    expect(full.body).toEqual({
      statusCode: 503,
      error: 'Service Unavailable',
      message: 'Queue gpu_medium is full; retry later',
    });
    for (const t of [first.body, second.body]) {
      const st = await service.http.get(`/tasks/${t.task_id}/status`);
      expect(st.body).toMatchObject({ task_id: t.task_id, status: 'queued', project_id: 'bp' });
    }
    expect((await service.http.get('/projects/bp/tasks')).body.pagination.total).toBe(2);
    // Another queue (cpu_intensive) is not full.
    const audio = await service.http.post('/tasks/submit', {
      project_id: 'bp',
      task_type: 'process_audio',
      task_data: { text: 'Hello there.' },
    });
    expect(audio.status).toBe(201);
    // Room again after a cancel; the refused Idempotency-Key was released and now succeeds.
    expect((await service.http.delete(`/tasks/${first.body.task_id}/cancel`)).status).toBe(200);
    const retried = await service.http.post('/tasks/submit', image('bp', 'three'), {
      headers: { 'idempotency-key': 'third' },
    });
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
  });

  it('a manual retry into a full queue is a 503 too, and the task stays as it was', async () => {
    // Full again: second and three wait. A cancelled task retried would make a third.
    const cancelled = (await service.http.get('/projects/bp/tasks?status=cancelled')).body
      .tasks[0] as { task_id: string };
    const refused = await service.http.post(`/tasks/${cancelled.task_id}/retry`);
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(refused.body.message).toBe('Queue gpu_medium is full; retry later');
    expect((await service.http.get(`/tasks/${cancelled.task_id}/status`)).body.status).toBe(
      'cancelled',
    );
  });
});

describe('rate limit off (RATE_LIMIT_SUBMIT=0)', () => {
  const service = new TestService({ worker: false, env: { RATE_LIMIT_SUBMIT: '0' } });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('submits are not counted', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await service.http.post('/tasks/submit', image('rl_off'));
      expect(res.status).toBe(201);
      expect(res.headers.get('x-ratelimit-limit')).toBeNull();
    }
    expect(await allRedisEntries(service)).not.toContain(':ratelimit:');
  });
});
