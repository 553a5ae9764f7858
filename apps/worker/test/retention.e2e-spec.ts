import { existsSync } from 'node:fs';
import path from 'node:path';
import { createRedisClient, groupKey, type RedisClient } from '@app/redis';
import { TaskRepository, TaskRetentionSweeper } from '@app/tasks';
import { runTaskToEnd, waitFor } from '@app/testing';
import { WORKER_TTL_SECONDS } from '@app/workers';
import { TestService } from '../../api/test/support/service.harness';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
} from './support/test-sleep.task';

const DAY = 24 * 3600 * 1000;
const PROJECT = 'retention_e2e';

/**
 * Seed 001's retention through the real API and worker: the TTLs of progress and worker
 * records, and the worker's sweeper acting on what a real run left (its clock set forward, never
 * waited for).
 */
describe('retention and TTLs (API + worker, real Redis)', () => {
  let svc: TestService;
  let redis: RedisClient;

  beforeAll(async () => {
    svc = await new TestService({
      env: {
        TASK_RETENTION_DAYS: '30',
        MEDIA_RETENTION_DAYS: '10',
        // Passes are run by the test.
        RETENTION_INTERVAL_MS: '86400000',
      },
      extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
      extraWorkerModules: [TestProcessorsModule],
    }).start();
    redis = createRedisClient(svc.config, 'spec');
  });

  afterAll(async () => {
    redis?.disconnect();
    await svc?.close();
  });

  const body = {
    project_id: PROJECT,
    task_type: 'test_sleep',
    task_data: { duration_ms: 50, steps: 5 },
  };

  it('keeps the progress of an ended task one hour, and a worker record five minutes after its last beat', async () => {
    const { id, final } = await runTaskToEnd(svc.http, body);
    expect(final.status).toBe('completed');
    const tasks = svc.worker!.get(TaskRepository, { strict: false });
    const ttl = await redis.pttl(tasks.progressKey(id));
    expect(ttl).toBeGreaterThan(3_500_000);
    expect(ttl).toBeLessThanOrEqual(3_600_000);

    const worker = groupKey(svc.config.redis.prefix, 'workers', svc.config.worker.id);
    const beat = await redis.ttl(worker);
    expect(beat).toBeGreaterThan(WORKER_TTL_SECONDS - 30);
    expect(beat).toBeLessThanOrEqual(WORKER_TTL_SECONDS);
    // Each beat starts the five minutes again (beats come every WORKER_HEARTBEAT_INTERVAL = 1 s).
    await redis.expire(worker, 100);
    await waitFor(async () => ((await redis.ttl(worker)) > 100 ? true : undefined), {
      what: 'the next beat to renew the worker record',
    });
    expect(await redis.ttl(worker)).toBeLessThanOrEqual(WORKER_TTL_SECONDS);
  });

  it("the worker's sweeper: outputs go after MEDIA_RETENTION_DAYS, records after TASK_RETENTION_DAYS", async () => {
    const idempotency = { headers: { 'idempotency-key': 'retention-e2e-1' } };
    const submitted = await svc.http.post('/tasks/submit', body, idempotency);
    expect(submitted.status).toBe(201);
    const id = submitted.body.task_id as string;
    await waitFor(
      async () => {
        const s = (await svc.http.get(`/tasks/${id}/status`)).body;
        return s.status === 'completed' ? s : undefined;
      },
      { what: `task ${id} to complete` },
    );
    const tasks = svc.worker!.get(TaskRepository, { strict: false });
    const output = path.join(svc.config.storage.localDir, (await tasks.get(id))!.result!.media_key);
    expect(existsSync(output)).toBe(true);
    const sweeper = svc.worker!.get(TaskRetentionSweeper, { strict: false });

    expect((await sweeper.pass(Date.now() + 9 * DAY)).mediaExpired).not.toContain(id);
    expect((await sweeper.pass(Date.now() + 11 * DAY)).mediaExpired).toContain(id);
    expect(existsSync(output)).toBe(false);
    const status = (await svc.http.get(`/tasks/${id}/status`)).body;
    expect(status).toMatchObject({
      status: 'completed',
      result: { media_url: null, media_deleted_at: expect.any(String) },
    });
    const listed = (await svc.http.get(`/projects/${PROJECT}/tasks?limit=100`)).body;
    expect(listed.tasks.find((t: { task_id: string }) => t.task_id === id)).toMatchObject({
      result_url: null,
    });
    // The same submit again is still a replay while the record exists.
    const replay = await svc.http.post('/tasks/submit', body, idempotency);
    expect(replay.body.task_id).toBe(id);

    expect((await sweeper.pass(Date.now() + 31 * DAY)).removed).toContain(id);
    expect((await svc.http.get(`/tasks/${id}/status`)).status).toBe(404);
    const after = (await svc.http.get(`/projects/${PROJECT}/tasks?limit=100`)).body;
    expect(after.tasks.map((t: { task_id: string }) => t.task_id)).not.toContain(id);
    // Its Idempotency-Key went with it: the same request makes a new task.
    const again = await svc.http.post('/tasks/submit', body, idempotency);
    expect(again.status).toBe(201);
    expect(again.body.task_id).not.toBe(id);
    expect(again.headers.get('idempotent-replayed')).toBeNull();
  });
});
