import { randomUUID } from 'node:crypto';
import { QueueName, TaskQueueService } from '@app/tasks';
import { TEST_SLEEP_TASK } from '../../worker/test/support/test-sleep.task';
import { TestService } from './support/service.harness';

/** The REST contract with no worker running: tasks stay queued unless the test moves them. */
describe('REST contract (API only, real Redis)', () => {
  const service = new TestService({ worker: false, extraDefinitions: [TEST_SLEEP_TASK] });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  const image = (project_id: string, task_data: Record<string, unknown> = {}, extra = {}) => ({
    project_id,
    task_type: 'generate_image',
    task_data: { character_description: 'Detective in 1920s noir style', ...task_data },
    ...extra,
  });

  describe('authentication', () => {
    it('401 without a key, naming the header', async () => {
      const res = await service.http.get(`/tasks/${randomUUID()}/status`, { key: null });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({
        statusCode: 401,
        error: 'Unauthorized',
        message: 'API key required in X-API-Key header',
      });
    });

    it('401 with a wrong key', async () => {
      const res = await service.http.post('/tasks/submit', image('p1'), { key: 'nope' });
      expect(res.status).toBe(401);
      expect(res.body.message).toBe('Invalid API key');
    });

    it('health needs no key; Swagger documents every route and the key scheme', async () => {
      const health = await service.http.get('/health/live', { key: null });
      expect(health.status).toBe(200);
      const ready = await service.http.get('/health/ready', { key: null });
      expect(ready.status).toBe(200);
      expect(ready.body.info.redis.status).toBe('up');
      const docs = await fetch(service.http.baseUrl.replace('/api/v1', '/docs/json'));
      const spec = (await docs.json()) as any;
      expect(Object.keys(spec.paths)).toEqual(
        expect.arrayContaining([
          '/api/v1/tasks/submit',
          '/api/v1/tasks/{task_id}/status',
          '/api/v1/tasks/{task_id}/cancel',
          '/api/v1/tasks/{task_id}/retry',
          '/api/v1/projects/{project_id}',
          '/api/v1/projects/{project_id}/tasks',
          '/api/v1/workers/status',
          '/api/v1/health',
        ]),
      );
      expect(spec.components.securitySchemes['api-key']).toMatchObject({
        in: 'header',
        name: 'x-api-key',
      });
      expect(spec.components.schemas.GenerateImageTaskData.required).toContain(
        'character_description',
      );
      expect(spec.paths['/api/v1/tasks/submit'].post.responses).toHaveProperty('400');
    });
  });

  describe('validation: 400 naming the field', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['bad project_id', image('../etc'), /project_id must be/],
      [
        'unknown task_type',
        { ...image('p1'), task_type: 'make_coffee' },
        /task_type must be one of: generate_image/,
      ],
      [
        'missing description',
        { project_id: 'p1', task_type: 'generate_image', task_data: {} },
        /task_data\.character_description/,
      ],
      [
        'width too large',
        image('p1', { width: 5000 }),
        /task_data\.width must not be greater than 2048/,
      ],
      [
        'too many references',
        image('p1', { reference_images: Array(9).fill('http://x.test/a.jpg') }),
        /task_data\.reference_images/,
      ],
      [
        'non-http style guide',
        image('p1', { style_guide: 'file:///etc/passwd' }),
        /task_data\.style_guide/,
      ],
      [
        'unknown task_data field',
        image('p1', { colour: 'red' }),
        /task_data\.colour should not exist/,
      ],
      ['bad format', image('p1', { format: 'gif' }), /task_data\.format/],
      ['priority out of range', image('p1', {}, { priority: 7 }), /priority must be 1, 2 or 3/],
      ['bad callback', image('p1', {}, { callback_url: 'ftp://x' }), /callback_url/],
      [
        'task_data not an object',
        { project_id: 'p1', task_type: 'generate_image', task_data: 'x' },
        /task_data must be an object/,
      ],
      [
        'unknown top-level field',
        { ...image('p1'), surprise: 1 },
        /property surprise should not exist/,
      ],
    ];
    it.each(cases)('%s', async (_, body, message) => {
      const res = await service.http.post('/tasks/submit', body);
      expect(res.status).toBe(400);
      expect(res.body.statusCode).toBe(400);
      expect([res.body.message].flat().join('\n')).toMatch(message);
    });

    it('malformed JSON is a 400, not a crash', async () => {
      const res = await service.http.request('POST', '/tasks/submit', {
        rawBody: '{"project_id": ',
      });
      expect(res.status).toBe(400);
      expect((await service.http.get('/health/live')).status).toBe(200);
    });

    it('bad ids and query parameters', async () => {
      expect((await service.http.get('/tasks/not-a-uuid/status')).body.message).toEqual([
        'task_id must be a UUID',
      ]);
      const list = await service.http.get('/projects/p1/tasks?limit=500&page=0&status=weird');
      expect(list.status).toBe(400);
      expect(list.body.message.join('\n')).toMatch(/limit must not be greater than 100/);
      expect(list.body.message.join('\n')).toMatch(/page must not be less than 1/);
      expect(list.body.message.join('\n')).toMatch(/status must be one of/);
      expect((await service.http.get('/projects/bad%20id/tasks')).status).toBe(400);
    });
  });

  it('404 for unknown ids on status, cancel and retry', async () => {
    const id = randomUUID();
    for (const res of [
      await service.http.get(`/tasks/${id}/status`),
      await service.http.delete(`/tasks/${id}/cancel`),
      await service.http.post(`/tasks/${id}/retry`),
    ]) {
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ statusCode: 404, error: 'Not Found' });
    }
  });

  it('queued tasks: status shape, exact queue positions by priority, cancel and retry', async () => {
    const low = [];
    for (let i = 0; i < 3; i++)
      low.push(
        (await service.http.post('/tasks/submit', image('queue_p', {}, { priority: 3 }))).body,
      );
    expect(low.map((t) => t.queue_position)).toEqual([1, 2, 3]);
    const normal = (await service.http.post('/tasks/submit', image('queue_p'))).body;
    expect(normal.queue_position).toBe(1);
    const high = (await service.http.post('/tasks/submit', image('queue_p', {}, { priority: 1 })))
      .body;
    expect(high.queue_position).toBe(1);
    const last = (await service.http.post('/tasks/submit', image('queue_p', {}, { priority: 3 })))
      .body;
    expect(last.queue_position).toBe(6);
    expect(high.estimated_duration).toBeGreaterThan(0);

    const st = await service.http.get(`/tasks/${high.task_id}/status`);
    expect(st.body).toEqual({
      task_id: high.task_id,
      project_id: 'queue_p',
      status: 'queued',
      progress: 0,
      current_step: 'waiting_in_queue',
      result: null,
      error: null,
      error_class: null,
      next_retry_at: null,
      attempts: 0,
      started_at: null,
      completed_at: null,
      webhook: null, // no callback_url
    });

    expect((await service.http.post(`/tasks/${high.task_id}/retry`)).status).toBe(409);
    const cancelled = await service.http.delete(`/tasks/${high.task_id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', current_step: 'cancelled' });
    // The job left its queue: the next waiting task moved up.
    const counts = await service.api
      .get(TaskQueueService)
      .queue(QueueName.GpuMedium)
      .getJobCounts('prioritized');
    expect(counts.prioritized).toBe(5);
    const conflict = await service.http.delete(`/tasks/${high.task_id}/cancel`);
    expect(conflict.status).toBe(409);
    expect(conflict.body.message).toMatch(/is cancelled/);

    const retried = await service.http.post(`/tasks/${high.task_id}/retry`);
    expect(retried.status).toBe(200);
    expect(retried.body).toMatchObject({ status: 'queued', queue_position: 1 });
  });

  it('lists a project’s tasks with filters and pagination, never another project’s', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++)
      ids.push((await service.http.post('/tasks/submit', image('list_a'))).body.task_id);
    for (let i = 0; i < 2; i++) {
      await service.http.post('/tasks/submit', {
        project_id: 'list_a',
        task_type: 'test_sleep',
        task_data: { duration_ms: 1 },
      });
    }
    for (let i = 0; i < 3; i++) await service.http.post('/tasks/submit', image('list_b'));
    await service.http.delete(`/tasks/${ids[0]}/cancel`);
    await service.http.delete(`/tasks/${ids[1]}/cancel`);

    const page1 = await service.http.get('/projects/list_a/tasks?page=1&limit=4');
    expect(page1.status).toBe(200);
    expect(page1.body.pagination).toEqual({ page: 1, limit: 4, total: 9, total_pages: 3 });
    expect(page1.body.tasks).toHaveLength(4);
    expect(page1.body.tasks[0]).toEqual({
      task_id: expect.any(String),
      task_type: 'test_sleep',
      status: 'queued',
      created_at: expect.any(String),
      completed_at: null,
      result_url: null,
    });
    const page3 = await service.http.get('/projects/list_a/tasks?page=3&limit=4');
    expect(page3.body.tasks).toHaveLength(1);
    expect(page3.body.tasks[0].task_id).toBe(ids[0]); // newest first
    const all = [
      ...page1.body.tasks,
      ...(await service.http.get('/projects/list_a/tasks?page=2&limit=4')).body.tasks,
      ...page3.body.tasks,
    ];
    expect(new Set(all.map((t: any) => t.task_id)).size).toBe(9);

    const cancelled = await service.http.get('/projects/list_a/tasks?status=cancelled');
    expect(cancelled.body.tasks.map((t: any) => t.task_id).sort()).toEqual([ids[0], ids[1]].sort());
    expect(cancelled.body.pagination).toMatchObject({ total: 2, limit: 20, page: 1 });
    const images = await service.http.get(
      '/projects/list_a/tasks?task_type=generate_image&status=queued',
    );
    expect(images.body.pagination.total).toBe(5);
    const sleeps = await service.http.get('/projects/list_a/tasks?task_type=test_sleep');
    expect(sleeps.body.pagination.total).toBe(2);

    const b = await service.http.get('/projects/list_b/tasks');
    expect(b.body.pagination.total).toBe(3);
    expect(b.body.tasks.every((t: any) => !ids.includes(t.task_id))).toBe(true);
    const none = await service.http.get('/projects/nobody/tasks');
    expect(none.body).toEqual({
      tasks: [],
      pagination: { page: 1, limit: 20, total: 0, total_pages: 0 },
    });

    // The project record, counted by the same scripts that moved the tasks.
    const project = await service.http.get('/projects/list_a');
    expect(project.status).toBe(200);
    expect(project.body).toEqual({
      project_id: 'list_a',
      project_name: 'list_a',
      task_count: 9,
      active_tasks: 0,
      pending_tasks: 7,
      storage_prefix: 'projects/list_a/',
      created_at: expect.any(String),
      last_activity: expect.any(String),
    });
    expect((await service.http.get('/projects/nobody')).status).toBe(404);
    expect((await service.http.get('/projects/bad%20id')).status).toBe(400);
  });
});

describe('backpressure (QUEUE_MAX_SIZE)', () => {
  const service = new TestService({ worker: false, env: { QUEUE_MAX_SIZE: '2' } });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  it('answers 503 with Retry-After once the queue holds QUEUE_MAX_SIZE waiting jobs', async () => {
    const body = {
      project_id: 'bp',
      task_type: 'generate_image',
      task_data: { character_description: 'x' },
    };
    expect((await service.http.post('/tasks/submit', body)).status).toBe(201);
    expect((await service.http.post('/tasks/submit', body)).status).toBe(201);
    const full = await service.http.post('/tasks/submit', body);
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('30');
    expect(full.body.message).toMatch(/Queue gpu_medium is full/);
    const listed = await service.http.get('/projects/bp/tasks');
    expect(listed.body.pagination.total).toBe(2);
  });
});
