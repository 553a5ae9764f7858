import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ConfigError } from '@app/config';
import { NSFW_CLASSES } from '@app/gpu';
import { runTaskToEnd, TestFileServer, TestPayloadServer, TestS3Server } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { WorkerMetrics } from '../src/metrics/worker-metrics.service';

const ROOT = path.resolve(__dirname, '../../..');
const PROJECT = 'detective_series_001';
const sum = (scores: Record<string, number>) => Object.values(scores).reduce((a, b) => a + b, 0);

const runToEnd = (service: TestService, body: unknown) => runTaskToEnd(service.http, body);

async function safetyCounters(service: TestService): Promise<Record<string, number>> {
  const text = await service.worker!.get(WorkerMetrics).scrape();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^safety_checks_total\{([^}]*)\} (\d+)/gm)) {
    const labels = Object.fromEntries(
      [...m[1].matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]),
    );
    counts[`${labels.target}:${labels.outcome}`] = Number(m[2]);
  }
  return counts;
}

const solid = (r: number, g: number, b: number) =>
  sharp({ create: { width: 64, height: 64, channels: 3, background: { r, g, b } } })
    .jpeg()
    .toBuffer();

/** safety_check end to end: real API + worker, the real classifier on wasm, real inputs. */
describe('safety_check (no SAFETY_BLOCK_THRESHOLD)', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'gpu_medium' } });
  const files = new TestFileServer();
  let base = '';

  beforeAll(async () => {
    files.set('/guide.jpg', { body: await solid(30, 30, 40), contentType: 'image/jpeg' });
    files.set('/ref1.jpg', { body: await solid(120, 20, 20), contentType: 'image/jpeg' });
    files.set('/ref2.jpg', { body: await solid(200, 180, 160), contentType: 'image/jpeg' });
    base = await files.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await files.stop();
  });

  it('reports the scores of the output and of every input image in result.metadata.safety', async () => {
    const { final } = await runToEnd(service, {
      project_id: PROJECT,
      task_type: 'generate_image',
      task_data: {
        character_description: 'Detective in 1920s noir style',
        style_guide: `${base}/guide.jpg`,
        reference_images: [`${base}/ref1.jpg`, `${base}/ref2.jpg`],
        width: 256,
        height: 256,
        safety_check: true,
      },
    });
    expect(final).toMatchObject({ status: 'completed', error: null, error_class: null });
    const safety = final.result.metadata.safety;
    expect(safety).toMatchObject({
      model: 'nsfw-mobilenet-v2',
      version: expect.stringMatching(/^\d+\.\d+/),
      threshold: null,
      blocked: false,
    });
    expect(Object.keys(safety.scores)).toEqual([...NSFW_CLASSES]);
    expect(Math.abs(sum(safety.scores) - 1)).toBeLessThan(1e-3);
    expect(safety.unsafe_score).toBeCloseTo(
      safety.scores.Porn + safety.scores.Hentai + safety.scores.Sexy,
      5,
    );
    expect(safety.inputs.map((i: { field: string }) => i.field)).toEqual([
      'task_data.style_guide',
      'task_data.reference_images[0]',
      'task_data.reference_images[1]',
    ]);
    for (const input of safety.inputs) expect(Math.abs(sum(input.scores) - 1)).toBeLessThan(1e-3);
    // The image itself is what any generate_image makes: stored and served.
    const media = await fetch(final.result.media_url);
    expect(media.status).toBe(200);
    expect(await sharp(Buffer.from(await media.arrayBuffer())).metadata()).toMatchObject({
      width: 256,
      height: 256,
    });
    expect(await safetyCounters(service)).toEqual({ 'input:passed': 3, 'output:passed': 1 });
  });

  it('classifies nothing for a task that does not ask for it', async () => {
    const before = await safetyCounters(service);
    const { final } = await runToEnd(service, {
      project_id: PROJECT,
      task_type: 'generate_image',
      task_data: {
        character_description: 'Detective in 1920s noir style',
        style_guide: `${base}/guide.jpg`,
        width: 128,
        height: 128,
      },
    });
    expect(final.status).toBe('completed');
    expect(final.result.metadata).not.toHaveProperty('safety');
    expect(await safetyCounters(service)).toEqual(before);
  });

  const submit = (safety_check: unknown) =>
    service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'generate_image',
      task_data: { character_description: 'x', width: 64, height: 64, safety_check },
    });

  it.each([['yes'], ['true'], [1], [{ on: true }]])(
    'refuses safety_check %j with a 400 naming the field',
    async (value) => {
      const res = await submit(value);
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body.message)).toContain(
        'task_data.safety_check must be a boolean value',
      );
    },
  );

  it('takes null as not sent, like every optional field', async () => {
    expect((await submit(null)).status).toBe(201);
  });
});

describe('safety_check with SAFETY_BLOCK_THRESHOLD (S3 storage, Payload)', () => {
  const s3 = new TestS3Server('safety-media');
  const payload = new TestPayloadServer('media', 'users API-Key payload-key');
  const files = new TestFileServer();
  let service: TestService;
  let base = '';

  beforeAll(async () => {
    files.set('/guide.jpg', { body: await solid(30, 30, 40), contentType: 'image/jpeg' });
    base = await files.start();
    await s3.start();
    service = new TestService({
      env: {
        WORKER_QUEUES: 'gpu_medium',
        // Any image has an unsafe score above a millionth: every checked image is blocked.
        SAFETY_BLOCK_THRESHOLD: '0.000001',
        ...s3.env('r2'),
        PAYLOAD_API_URL: await payload.start(),
        PAYLOAD_API_KEY: 'payload-key',
        PAYLOAD_TIMEOUT_MS: '5000',
      },
    });
    await service.start();
  });
  afterAll(async () => {
    await service?.close();
    await payload.stop();
    await s3.stop();
    await files.stop();
  });

  const task = (extra: Record<string, unknown>) => ({
    project_id: PROJECT,
    task_type: 'generate_image',
    task_data: { character_description: 'A tall robot', width: 128, height: 128, ...extra },
  });

  it('fails a task whose output crosses it with content_blocked, once, storing and registering nothing', async () => {
    const { id, final } = await runToEnd(service, task({ safety_check: true }));
    expect(final).toMatchObject({
      status: 'failed',
      error_class: 'content_blocked',
      attempts: 1,
      next_retry_at: null,
      result: null,
    });
    expect(final.error).toMatch(
      /^content blocked: output image has unsafe_score [\d.e-]+ \(Porn [\d.e-]+ \+ Hentai [\d.e-]+ \+ Sexy [\d.e-]+\), above SAFETY_BLOCK_THRESHOLD 0\.000001; the output was not stored$/,
    );
    expect(s3.writes.filter((k) => k.includes(id))).toEqual([]);
    expect(payload.docs).toEqual([]);
    expect(payload.requests).toEqual([]);
    // Not retried: still failed, still one attempt, a while later.
    await new Promise((r) => setTimeout(r, 1000));
    const later = (await service.http.get(`/tasks/${id}/status`)).body;
    expect(later).toMatchObject({ status: 'failed', attempts: 1, error_class: 'content_blocked' });
    const listed = await service.http.get(`/projects/${PROJECT}/tasks?status=failed`);
    expect(listed.body.tasks).toEqual(
      expect.arrayContaining([expect.objectContaining({ task_id: id, result_url: null })]),
    );
  });

  it('blocks an unsafe input image before the task is processed, naming its field', async () => {
    const { final } = await runToEnd(
      service,
      task({ safety_check: true, style_guide: `${base}/guide.jpg` }),
    );
    expect(final).toMatchObject({ status: 'failed', error_class: 'content_blocked', attempts: 1 });
    expect(final.error).toMatch(
      /^content blocked: input image task_data\.style_guide has unsafe_score .* above SAFETY_BLOCK_THRESHOLD 0\.000001; the task was not processed$/,
    );
    expect(s3.writes).toEqual([]);
    expect(payload.docs).toEqual([]);
    expect(await safetyCounters(service)).toMatchObject({
      'output:blocked': 1,
      'input:blocked': 1,
    });
  });

  it('leaves tasks that do not ask for the check alone: stored and registered', async () => {
    const { id, final } = await runToEnd(service, task({}));
    expect(final.status).toBe('completed');
    expect(final.result.metadata).not.toHaveProperty('safety');
    expect(final.result.payload_media_id).toEqual(expect.any(String));
    expect(s3.writes).toEqual([`projects/${PROJECT}/image/${id}/output.jpg`]);
    expect(payload.docs).toHaveLength(1);
  });
});

describe('SAFETY_BLOCK_THRESHOLD out of range', () => {
  it('stops the service at boot, naming the variable', async () => {
    const service = new TestService({ env: { SAFETY_BLOCK_THRESHOLD: '2' } });
    const err = await service.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(
      /SAFETY_BLOCK_THRESHOLD must be a number from 0 to 1 \(unset: never block\)/,
    );
  });

  it('the worker process exits 1 at once, saying what to fix', async () => {
    // A folder without .env, so only the environment below counts.
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'safety-boot-'));
    expect(existsSync(path.join(cwd, '.env'))).toBe(false);
    const child = spawn(
      process.execPath,
      [
        '-r',
        'ts-node/register/transpile-only',
        '-r',
        'tsconfig-paths/register',
        path.join(ROOT, 'apps/worker/src/main.ts'),
      ],
      {
        cwd,
        env: {
          PATH: process.env.PATH,
          NODE_PATH: path.join(ROOT, 'node_modules'),
          TS_NODE_PROJECT: path.join(ROOT, 'tsconfig.json'),
          API_KEYS: 'k',
          SAFETY_BLOCK_THRESHOLD: '2',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect({ code, output }).toMatchObject({
      code: 1,
      output: expect.stringMatching(
        /Invalid configuration:\s+- SAFETY_BLOCK_THRESHOLD must be a number from 0 to 1/,
      ),
    });
  });
});
