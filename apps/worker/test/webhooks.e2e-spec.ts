import {
  createServer,
  type IncomingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRedisClient } from '@app/redis';
import { TaskRepository } from '@app/tasks';
import { waitFor } from '@app/testing';
import { WebhookOutboxRelay } from '@app/webhooks';
import { Webhook } from 'standardwebhooks';
import { TestService } from '../../api/test/support/service.harness';
import { WorkerMetrics } from '../src/metrics/worker-metrics.service';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from './support/test-sleep.task';

const PROJECT = 'webhook_proj';
const SECRET = 'whsec_' + Buffer.from('webhook-e2e-secret-0123456789abcdef').toString('base64');

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

/** 'hang' keeps the request open (past the sender's timeout); a number is the answer. */
type Answer = number | 'hang' | 'redirect';

/**
 * A webhook receiver on loopback: `/<name>` answers from that name's script of answers (the last
 * one repeating) and records every request.
 */
class Receiver {
  private server?: Server;
  private readonly scripts = new Map<string, Answer[]>();
  private readonly hung: ServerResponse[] = [];
  readonly received = new Map<string, Received[]>();

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const name = (req.url ?? '/').slice(1);
        const list = this.received.get(name) ?? [];
        list.push({ headers: req.headers, body: Buffer.concat(chunks).toString(), at: Date.now() });
        this.received.set(name, list);
        const script = this.scripts.get(name) ?? [200];
        const answer = script.length > 1 ? script.shift()! : script[0];
        if (answer === 'hang') return void this.hung.push(res);
        if (answer === 'redirect') return void res.writeHead(307, { location: '/elsewhere' }).end();
        res.writeHead(answer, { 'content-type': 'text/plain' }).end('ok');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
  }

  url(name: string, answers: Answer[] = [200]): string {
    this.scripts.set(name, [...answers]);
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/${name}`;
  }

  requests(name: string): Received[] {
    return this.received.get(name) ?? [];
  }

  async stop(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

function verified(request: Received): Record<string, unknown> {
  const headers = Object.fromEntries(
    ['webhook-id', 'webhook-timestamp', 'webhook-signature'].map((h) => [
      h,
      String(request.headers[h]),
    ]),
  );
  return new Webhook(SECRET).verify(request.body, headers) as Record<string, unknown>;
}

describe('webhooks (API + worker, real Redis, loopback receiver)', () => {
  const receiver = new Receiver();
  const service = new TestService({
    extraDefinitions: [TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
    extraWorkerModules: [TestProcessorsModule],
    env: {
      WORKER_QUEUES: 'cpu_intensive',
      WEBHOOK_SECRET: SECRET,
      WEBHOOK_MAX_ATTEMPTS: '4',
      WEBHOOK_TIMEOUT_MS: '400',
    },
  });

  beforeAll(async () => {
    await receiver.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await receiver.stop();
  });
  beforeEach(() => testSleepLog.reset());

  const status = async (id: string) => (await service.http.get(`/tasks/${id}/status`)).body;
  const submit = async (task_data: Record<string, unknown>, callback_url?: string) => {
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'test_sleep',
      task_data,
      ...(callback_url ? { callback_url } : {}),
    });
    expect(res.status).toBe(201);
    return res.body.task_id as string;
  };
  const webhookSettled = (id: string, timeoutMs = 20_000) =>
    waitFor(
      async () => {
        const s = await status(id);
        return s.webhook && s.webhook.state !== 'pending' ? s : undefined;
      },
      { timeoutMs, what: `webhook of task ${id} to settle` },
    );
  const quietFor = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('POSTs a signed task.completed event that verifies with standardwebhooks', async () => {
    const id = await submit({ duration_ms: 20, steps: 2 }, receiver.url('completed'));
    const done = await webhookSettled(id);
    expect(done.status).toBe('completed');
    const [request, ...more] = receiver.requests('completed');
    expect(more).toEqual([]);
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['webhook-id']).toBe(`msg_${id}_completed_0`);
    const event = verified(request);
    expect(event).toEqual({
      event: 'task.completed',
      task_id: id,
      project_id: PROJECT,
      status: 'completed',
      completed_at: done.completed_at,
      result: {
        media_url: expect.stringContaining(`/media/projects/${PROJECT}/audio/${id}/output.json`),
        payload_media_id: null,
        metadata: expect.objectContaining({ slept_ms: 20 }),
      },
      error: null,
    });
    const media = await fetch((event.result as { media_url: string }).media_url);
    expect(await media.json()).toEqual({ slept_ms: 20 });
    expect(done.webhook).toEqual({
      event: 'task.completed',
      state: 'delivered',
      attempts: 1,
      last_status: 200,
      delivered_at: expect.any(String),
      next_attempt_at: null,
      last_error: null,
    });
    await quietFor(300);
    expect(receiver.requests('completed')).toHaveLength(1);
  });

  it('retries 500, 500 then 200: three POSTs of one event, and the task shows delivered', async () => {
    const id = await submit({ duration_ms: 10, steps: 1 }, receiver.url('flaky', [500, 500, 200]));
    const done = await webhookSettled(id);
    const requests = receiver.requests('flaky');
    expect(requests).toHaveLength(3);
    expect(new Set(requests.map((r) => r.headers['webhook-id']))).toEqual(
      new Set([`msg_${id}_completed_0`]),
    );
    for (const r of requests)
      expect(verified(r)).toMatchObject({ event: 'task.completed', task_id: id });
    // Backoff, not a tight loop: the second retry waits 5 min × WEBHOOK_RETRY_SCALE (0.3 s).
    expect(requests[2].at - requests[1].at).toBeGreaterThanOrEqual(250);
    expect(done.status).toBe('completed');
    expect(done.webhook).toMatchObject({
      state: 'delivered',
      attempts: 3,
      last_status: 200,
      delivered_at: expect.any(String),
      last_error: null,
    });
    await quietFor(300);
    expect(receiver.requests('flaky')).toHaveLength(3);
    const metrics = await service.worker!.get(WorkerMetrics).scrape();
    expect(metrics).toMatch(/webhook_deliveries_total\{outcome="retrying"[^}]*\} [2-9]/);
    expect(metrics).toMatch(/webhook_deliveries_total\{outcome="delivered"[^}]*\} [1-9]/);
  });

  it('sends task.failed with the error, and task.cancelled for a cancelled task', async () => {
    const failedId = await submit(
      { duration_ms: 10, steps: 1, fail_times: 1, fail_kind: 'validation' },
      receiver.url('failed'),
    );
    const failed = await webhookSettled(failedId);
    expect(failed).toMatchObject({
      status: 'failed',
      webhook: { state: 'delivered', event: 'task.failed' },
    });
    expect(verified(receiver.requests('failed')[0])).toEqual({
      event: 'task.failed',
      task_id: failedId,
      project_id: PROJECT,
      status: 'failed',
      completed_at: failed.completed_at,
      result: null,
      error: failed.error,
    });
    expect(failed.error).toContain('bad input');

    const cancelledId = await submit(
      { duration_ms: 20_000, steps: 200 },
      receiver.url('cancelled'),
    );
    await waitFor(async () =>
      (await status(cancelledId)).status === 'processing' ? true : undefined,
    );
    expect((await service.http.delete(`/tasks/${cancelledId}/cancel`)).status).toBe(200);
    const cancelled = await webhookSettled(cancelledId);
    expect(cancelled).toMatchObject({ status: 'cancelled', webhook: { state: 'delivered' } });
    const [request, ...more] = receiver.requests('cancelled');
    expect(more).toEqual([]);
    expect(verified(request)).toMatchObject({
      event: 'task.cancelled',
      task_id: cancelledId,
      status: 'cancelled',
      result: null,
    });
  });

  it('a manual retry that ends again is a new event with its own id', async () => {
    const id = await submit(
      { duration_ms: 10, steps: 1, fail_times: 1, fail_kind: 'validation' },
      receiver.url('again'),
    );
    await webhookSettled(id);
    expect((await service.http.post(`/tasks/${id}/retry`, {})).status).toBe(200);
    await waitFor(async () => {
      const s = await status(id);
      return s.status === 'completed' &&
        s.webhook?.event === 'task.completed' &&
        s.webhook.state === 'delivered'
        ? s
        : undefined;
    });
    expect(receiver.requests('again').map((r) => r.headers['webhook-id'])).toEqual([
      `msg_${id}_failed_0`,
      `msg_${id}_completed_1`,
    ]);
  });

  it('shows no webhook for a task without callback_url', async () => {
    const id = await submit({ duration_ms: 10, steps: 1 });
    await waitFor(async () => ((await status(id)).status === 'completed' ? true : undefined));
    expect((await status(id)).webhook).toBeNull();
  });

  it('a hanging receiver neither delays nor changes the task; the event is given up', async () => {
    const id = await submit({ duration_ms: 10, steps: 1 }, receiver.url('hang', ['hang']));
    // The first POST is still open when the task is already completed.
    await waitFor(async () => (receiver.requests('hang').length > 0 ? true : undefined));
    const meanwhile = await status(id);
    expect(meanwhile.status).toBe('completed');
    expect(meanwhile.webhook).toMatchObject({ state: 'pending', attempts: 0 });
    const done = await webhookSettled(id);
    expect(done.status).toBe('completed');
    expect(done.result.media_url).toEqual(expect.any(String));
    expect(done.webhook).toMatchObject({
      state: 'failed',
      attempts: 4,
      last_status: null,
      last_error: 'no answer within 400 ms',
      delivered_at: null,
      next_attempt_at: null,
    });
    expect(receiver.requests('hang')).toHaveLength(4);
  });

  it('gives up at once on 410 Gone or a redirect; an always-failing receiver after WEBHOOK_MAX_ATTEMPTS', async () => {
    const goneId = await submit({ duration_ms: 10, steps: 1 }, receiver.url('gone', [410]));
    const failingId = await submit({ duration_ms: 10, steps: 1 }, receiver.url('down', [503]));
    const gone = await webhookSettled(goneId);
    expect(gone).toMatchObject({
      status: 'completed',
      webhook: { state: 'failed', attempts: 1, last_status: 410, last_error: 'HTTP 410' },
    });
    const failing = await webhookSettled(failingId);
    expect(failing).toMatchObject({
      status: 'completed',
      webhook: { state: 'failed', attempts: 4, last_status: 503, next_attempt_at: null },
    });
    expect(receiver.requests('gone')).toHaveLength(1);
    // Standard Webhooks: redirects are not followed; the sender gives up like for a refused URL.
    const movedId = await submit(
      { duration_ms: 10, steps: 1 },
      receiver.url('moved', ['redirect']),
    );
    const moved = await webhookSettled(movedId);
    expect(moved).toMatchObject({
      status: 'completed',
      webhook: { state: 'failed', attempts: 1, last_status: null },
    });
    expect(moved.webhook.last_error).toContain('redirects are not followed');
    expect(receiver.requests('moved')).toHaveLength(1);
    expect(receiver.requests('elsewhere')).toEqual([]);
    expect(receiver.requests('down')).toHaveLength(4);
  });

  describe('outbox durability', () => {
    it('delivers an event recorded while no worker ran', async () => {
      await service.stopWorker();
      try {
        const id = await submit({ duration_ms: 10, steps: 1 }, receiver.url('offline'));
        expect((await service.http.delete(`/tasks/${id}/cancel`)).status).toBe(200);
        expect((await status(id)).webhook).toMatchObject({ state: 'pending', attempts: 0 });
        await quietFor(200);
        expect(receiver.requests('offline')).toEqual([]);
        await service.startWorker();
        const done = await webhookSettled(id);
        expect(done.webhook).toMatchObject({ state: 'delivered', attempts: 1 });
        expect(verified(receiver.requests('offline')[0])).toMatchObject({
          event: 'task.cancelled',
          task_id: id,
        });
      } finally {
        if (!service.worker) await service.startWorker();
      }
    });

    it('makes its consumer group again when the outbox stream was deleted', async () => {
      const redis = createRedisClient(service.config, 'spec');
      try {
        // The stream of the partition the next task goes to (its project's).
        const outbox = service.api.get(TaskRepository).webhookOutboxKey(PROJECT);
        expect(await redis.del(outbox)).toBe(1);
        const id = await submit({ duration_ms: 10, steps: 1 }, receiver.url('regroup'));
        const done = await webhookSettled(id);
        expect(done.webhook).toMatchObject({ state: 'delivered', attempts: 1 });
        expect(receiver.requests('regroup')).toHaveLength(1);
      } finally {
        redis.disconnect();
      }
    });

    it('takes over an event a dead worker read from the outbox but never relayed', async () => {
      await service.stopWorker();
      const redis = createRedisClient(service.config, 'spec');
      try {
        const id = await submit({ duration_ms: 10, steps: 1 }, receiver.url('orphan'));
        expect((await service.http.delete(`/tasks/${id}/cancel`)).status).toBe(200);
        const outbox = service.api.get(TaskRepository).webhookOutboxKey(id);
        await redis
          .xgroup('CREATE', outbox, WebhookOutboxRelay.GROUP, '0', 'MKSTREAM')
          .catch(() => undefined);
        // A relay that read the entry and died before enqueueing it.
        const read = await redis.xreadgroup(
          'GROUP',
          WebhookOutboxRelay.GROUP,
          'dead-worker',
          'COUNT',
          10,
          'STREAMS',
          outbox,
          '>',
        );
        expect(JSON.stringify(read)).toContain(id);
        const worker = await service.startWorker();
        await quietFor(300);
        expect(receiver.requests('orphan')).toEqual([]);
        worker.get(WebhookOutboxRelay).claimIdleMs = 200;
        const done = await webhookSettled(id);
        expect(done.webhook).toMatchObject({ state: 'delivered', attempts: 1 });
        expect(receiver.requests('orphan')).toHaveLength(1);
        expect(await redis.xlen(outbox)).toBe(0);
      } finally {
        redis.disconnect();
        if (!service.worker) await service.startWorker();
      }
    });
  });
});
