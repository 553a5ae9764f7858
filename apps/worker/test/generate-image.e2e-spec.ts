import sharp from 'sharp';
import { runTaskToEnd, TestFileServer, waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';

/** Seed 004 scenario 2 end to end: real API, real worker (tfjs), real HTTP inputs, real JPEG. */
describe('generate_image end to end', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'gpu_medium' } });
  const files = new TestFileServer();
  let base = '';

  beforeAll(async () => {
    const solid = (r: number, g: number, b: number) =>
      sharp({ create: { width: 64, height: 64, channels: 3, background: { r, g, b } } })
        .jpeg()
        .toBuffer();
    files.set('/noir_style_guide.jpg', {
      body: await solid(30, 30, 40),
      contentType: 'image/jpeg',
    });
    files.set('/ref1.jpg', { body: await solid(120, 20, 20), contentType: 'image/jpeg' });
    files.set('/ref2.jpg', { body: await solid(200, 180, 160), contentType: 'image/jpeg' });
    base = await files.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await files.stop();
  });

  const run = (body: unknown) =>
    runTaskToEnd(service.http, body, { timeoutMs: 90_000, intervalMs: 25 });

  it('scenario 2: a 1024×1024 JPEG from description, style guide and references', async () => {
    const { id, final, seen } = await run({
      project_id: 'detective_series_001',
      task_type: 'generate_image',
      task_data: {
        character_description: 'Detective in 1920s noir style',
        style_guide: `${base}/noir_style_guide.jpg`,
        reference_images: [`${base}/ref1.jpg`, `${base}/ref2.jpg`],
        pose: 'standing_confident',
        lighting: 'dramatic_shadow',
      },
      priority: 2,
      metadata: {
        user_id: 'user123',
        agent_id: 'character_design_agent',
        character_id: 'detective_main',
      },
    });
    expect(final.status).toBe('completed');
    const progresses = seen.map((s) => s.progress);
    expect(progresses).toEqual([...progresses].sort((a, b) => a - b));
    expect(seen.map((s) => s.step)).toEqual(expect.arrayContaining(['generating_image']));
    expect(final).toMatchObject({ progress: 1, current_step: 'upload_complete', error: null });
    expect(final.result.metadata).toMatchObject({
      resolution: '1024x1024',
      format: 'JPEG',
      seed: expect.any(Number),
      backend: 'wasm',
      file_size: expect.any(Number),
    });
    for (const path of ['/noir_style_guide.jpg', '/ref1.jpg', '/ref2.jpg'])
      expect(files.hits.get(path)).toBe(1);

    const media = await fetch(final.result.media_url);
    expect(media.status).toBe(200);
    expect(media.headers.get('content-type')).toBe('image/jpeg');
    const bytes = Buffer.from(await media.arrayBuffer());
    expect(bytes.length).toBe(final.result.metadata.file_size);
    const meta = await sharp(bytes).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 1024, height: 1024 });
    expect(final.result.media_url).toContain(
      `/projects/detective_series_001/image/${id}/output.jpg`,
    );
    const { channels } = await sharp(bytes).stats();
    // A picture, not a flat fill.
    expect(Math.max(...channels.map((c) => c.stdev))).toBeGreaterThan(10);
  });

  it('honours size and format; the same seed gives the same image', async () => {
    const body = {
      project_id: 'sizes',
      task_type: 'generate_image',
      task_data: {
        character_description: 'A tall robot',
        width: 320,
        height: 192,
        format: 'png',
        seed: 7,
      },
    };
    const a = await run(body);
    const b = await run(body);
    const bytesA = Buffer.from(await (await fetch(a.final.result.media_url)).arrayBuffer());
    const bytesB = Buffer.from(await (await fetch(b.final.result.media_url)).arrayBuffer());
    expect(await sharp(bytesA).metadata()).toMatchObject({
      format: 'png',
      width: 320,
      height: 192,
    });
    expect(bytesA.equals(bytesB)).toBe(true);
    expect(a.final.result.metadata).toMatchObject({
      seed: 7,
      format: 'PNG',
      resolution: '320x192',
    });
  });

  it('an input URL that does not exist fails the task with a clear error, without retries', async () => {
    const { final } = await run({
      project_id: 'sizes',
      task_type: 'generate_image',
      task_data: {
        character_description: 'x',
        width: 64,
        height: 64,
        style_guide: `${base}/missing.jpg`,
      },
    });
    expect(final.status).toBe('failed');
    expect(final.error).toMatch(/task_data\.style_guide.*404/);
    expect(files.hits.get('/missing.jpg')).toBe(1);
  });

  it('cancels a running image task', async () => {
    const submitted = await service.http.post('/tasks/submit', {
      project_id: 'sizes',
      task_type: 'generate_image',
      task_data: { character_description: 'A very large canvas', width: 2048, height: 2048 },
    });
    const id = submitted.body.task_id as string;
    await waitFor(async () => {
      const s = (await service.http.get(`/tasks/${id}/status`)).body;
      return s.current_step === 'generating_image' ? s : undefined;
    });
    expect((await service.http.delete(`/tasks/${id}/cancel`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    const s = (await service.http.get(`/tasks/${id}/status`)).body;
    expect(s).toMatchObject({ status: 'cancelled', result: null });
  });
});
