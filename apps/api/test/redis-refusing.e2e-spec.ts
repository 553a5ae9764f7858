import { closeRedisClient, createRedisClient, type RedisClient } from '@app/redis';
import { PrivateRedisServer, testConfig, waitFor, type HttpResult } from '@app/testing';
import { TestService } from './support/service.harness';

const PROJECT = 'redis_refusing';
const UNAVAILABLE = {
  statusCode: 503,
  error: 'Service Unavailable',
  message: 'Storage is unavailable; retry later',
};

/**
 * Issue 12: Redis at maxmemory with noeviction refuses every write (OOM) but still answers reads;
 * a stopped Redis answers nothing. The API must answer 503 + Retry-After in its own words (never
 * Redis's), fail fast rather than hang, keep serving reads, and report itself not ready until
 * Redis takes writes again. A private redis-server with a small maxmemory, so filling it touches
 * no other test.
 */
describe('Redis refusing writes or unreachable: 503 + Retry-After', () => {
  const redisServer = new PrivateRedisServer({
    args: ['--maxmemory', '20mb', '--maxmemory-policy', 'noeviction'],
  });
  let service: TestService;
  let admin: RedisClient;

  beforeAll(async () => {
    await redisServer.start();
    admin = createRedisClient(testConfig({ REDIS_URL: redisServer.url }), 'admin', {
      commandTimeoutMs: 10_000,
    });
    service = new TestService({
      worker: false,
      env: { REDIS_URL: redisServer.url, REDIS_COMMAND_TIMEOUT_MS: '1000' },
    });
    await service.start();
  });

  afterAll(async () => {
    if (admin) await closeRedisClient(admin);
    await service?.close();
    await redisServer.stop();
  });

  const submit = (headers: Record<string, string> = {}) =>
    service.http.post(
      '/tasks/submit',
      {
        project_id: PROJECT,
        task_type: 'generate_image',
        task_data: { character_description: 'Detective in 1920s noir style' },
      },
      { headers },
    );
  const ready = () => service.http.get('/health/ready', { key: null });

  function expectUnavailable(res: HttpResult): void {
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(res.body).toEqual(UNAVAILABLE);
    expect(JSON.stringify(res.body)).not.toMatch(/OOM|maxmemory|timed out|Connection/i);
  }

  it('Redis out of memory: writes answer 503, reads 200, readiness down; all well once memory is back', async () => {
    const first = await submit();
    expect(first.status).toBe(201);
    const taskId = first.body.task_id as string;
    await waitFor(async () => ((await ready()).status === 200 ? true : undefined), {
      what: 'readiness up',
    });

    // A 30 MB string: every write after it is refused (used memory > maxmemory, noeviction).
    await admin.setrange('filler', 30 * 1024 * 1024, 'x');
    await expect(admin.set('probe', '1')).rejects.toThrow(/OOM/);

    // The rate limiter (a guard) is the first to write.
    expectUnavailable(await submit());
    // With an Idempotency-Key, and from a handler: cancel is a write too.
    expectUnavailable(await submit({ 'idempotency-key': 'oom-submit-1' }));
    expectUnavailable(await service.http.delete(`/tasks/${taskId}/cancel`));

    const status = await service.http.get(`/tasks/${taskId}/status`);
    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ task_id: taskId, status: 'queued' });

    const notReady = await ready();
    expect(notReady.status).toBe(503);
    expect(notReady.body.details.redis).toMatchObject({
      status: 'down',
      message: expect.stringMatching(/OOM command not allowed/),
    });
    expect((await service.http.get('/health/live', { key: null })).status).toBe(200);

    await admin.config('SET', 'maxmemory', '300mb');
    const again = await submit();
    expect(again.status).toBe(201);
    expect((await submit({ 'idempotency-key': 'oom-submit-1' })).status).toBe(201);
    const up = await ready();
    expect(up.status).toBe(200);
    expect(up.body.details.redis.status).toBe('up');
    await admin.config('SET', 'maxmemory', '20mb');
    await admin.del('filler');
  });

  it('Redis stopped: a submit answers 503 within the command timeout, not a hang', async () => {
    await redisServer.stop();
    await waitFor(async () => ((await ready()).status === 503 ? true : undefined), {
      timeoutMs: 10_000,
      what: 'readiness down',
    });
    const started = Date.now();
    const res = await submit();
    const elapsed = Date.now() - started;
    expectUnavailable(res);
    // REDIS_COMMAND_TIMEOUT_MS is 1 s; the bound is generous for a loaded machine, far from "never".
    expect(elapsed).toBeLessThan(15_000);
    expect((await service.http.get('/health/live', { key: null })).status).toBe(200);

    await redisServer.start();
    await waitFor(async () => ((await ready()).status === 200 ? true : undefined), {
      timeoutMs: 30_000,
      what: 'readiness up after Redis is back',
    });
    expect((await submit()).status).toBe(201);
  });
});
