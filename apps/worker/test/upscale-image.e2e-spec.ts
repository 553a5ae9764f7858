import sharp from 'sharp';
import { GpuService, ModelRepository } from '@app/gpu';
import { photoLikeImage, runTaskToEnd, TestFileServer, waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { TaskRunner } from '../src/runtime/task-runner';

/** upscale_image end to end: real API, real worker (ESRGAN on tfjs), real HTTP input, real PNG. */
describe('upscale_image end to end', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'gpu_medium' } });
  const files = new TestFileServer();
  let base = '';

  beforeAll(async () => {
    const frame = (w: number, h: number, seed: number) =>
      sharp(photoLikeImage(w, h, seed), { raw: { width: w, height: h, channels: 3 } });
    files.set('/frame.jpg', {
      body: await frame(96, 64, 1).jpeg({ quality: 92 }).toBuffer(),
      contentType: 'image/jpeg',
    });
    files.set('/large.png', {
      body: await frame(200, 200, 2).png().toBuffer(),
      contentType: 'image/png',
    });
    // 4 MP in (a valid input), 64 MP out at ×4: over IMAGE_MAX_PIXELS (50 MP).
    files.set('/huge.png', {
      body: await sharp({ create: { width: 2000, height: 2000, channels: 3, background: '#777' } })
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    base = await files.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await files.stop();
  });

  const status = async (id: string) => (await service.http.get(`/tasks/${id}/status`)).body;

  const run = (body: Record<string, unknown>) =>
    runTaskToEnd(service.http, body, { timeoutMs: 180_000, intervalMs: 25 });

  const download = async (url: string) => {
    const media = await fetch(url);
    expect(media.status).toBe(200);
    return {
      bytes: Buffer.from(await media.arrayBuffer()),
      type: media.headers.get('content-type'),
    };
  };

  it('upscales an image ×4 to a PNG of four times its sides, with the model in the metadata', async () => {
    const { id, submitted, final, seen } = await run({
      project_id: 'upscales',
      task_type: 'upscale_image',
      task_data: { image_url: `${base}/frame.jpg`, scale: 4, quality: 'fast', format: 'png' },
    });
    expect(submitted).toMatchObject({ status: 'queued', estimated_duration: expect.any(Number) });
    expect(final).toMatchObject({ status: 'completed', progress: 1, error: null });
    expect(seen.map((s) => s.step)).toEqual(expect.arrayContaining(['upscaling_image']));
    const progresses = seen.map((s) => s.progress);
    expect(progresses).toEqual([...progresses].sort((a, b) => a - b));
    expect(final.result.metadata).toMatchObject({
      resolution: '384x256',
      input_resolution: '96x64',
      output_resolution: '384x256',
      format: 'PNG',
      scale: 4,
      quality: 'fast',
      model: 'esrgan-slim-x4',
      model_version: '1.0.0',
      backend: 'wasm',
      tiles: 1,
      file_size: expect.any(Number),
    });
    expect(final.result.media_url).toContain(`/projects/upscales/image/${id}/output.png`);

    const { bytes, type } = await download(final.result.media_url);
    expect(type).toBe('image/png');
    expect(await sharp(bytes).metadata()).toMatchObject({ format: 'png', width: 384, height: 256 });
    // It is the input, bigger: shrunk back, it matches what was sent.
    const back = await sharp(bytes).resize(96, 64).removeAlpha().raw().toBuffer();
    const sent = await sharp((await download(`${base}/frame.jpg`)).bytes)
      .raw()
      .toBuffer();
    let diff = 0;
    for (let i = 0; i < sent.length; i++) diff += Math.abs(back[i] - sent[i]);
    expect(diff / sent.length).toBeLessThan(8);
  });

  it('defaults to ×4 balanced JPEG', async () => {
    const { final } = await run({
      project_id: 'upscales',
      task_type: 'upscale_image',
      task_data: { image_url: `${base}/frame.jpg` },
    });
    expect(final.status).toBe('completed');
    expect(final.result.metadata).toMatchObject({
      model: 'esrgan-medium-x4',
      quality: 'balanced',
      scale: 4,
      format: 'JPEG',
    });
    const { bytes, type } = await download(final.result.media_url);
    expect(type).toBe('image/jpeg');
    expect(await sharp(bytes).metadata()).toMatchObject({
      format: 'jpeg',
      width: 384,
      height: 256,
    });
  });

  it.each([
    [
      'scale 5',
      { image_url: 'https://example.com/a.png', scale: 5 },
      /task_data\.scale must be one of/,
    ],
    ['no image_url', { scale: 2 }, /task_data\.image_url/],
    [
      "quality 'ultra'",
      { image_url: 'https://example.com/a.png', quality: 'ultra' },
      /task_data\.quality must be one of/,
    ],
    [
      'a file: URL',
      { image_url: 'file:///etc/passwd' },
      /task_data\.image_url must be an http\(s\) URL/,
    ],
    ['format gif', { image_url: 'https://example.com/a.png', format: 'gif' }, /task_data\.format/],
  ])('bad input (%s) is a 400 naming the field', async (_, taskData, message) => {
    const res = await service.http.post('/tasks/submit', {
      project_id: 'upscales',
      task_type: 'upscale_image',
      task_data: taskData,
    });
    expect(res.status).toBe(400);
    expect([res.body.message].flat().join('\n')).toMatch(message);
  });

  it('an output above IMAGE_MAX_PIXELS fails at once, naming image_url and scale', async () => {
    const { final } = await run({
      project_id: 'upscales',
      task_type: 'upscale_image',
      task_data: { image_url: `${base}/huge.png`, scale: 4 },
    });
    expect(final).toMatchObject({ status: 'failed', result: null, attempts: 1 });
    expect(final.error).toMatch(
      /task_data\.image_url is 2000x2000: task_data\.scale 4 would make it 8000x8000 .*IMAGE_MAX_PIXELS/,
    );
    expect(files.hits.get('/huge.png')).toBe(1);
  });

  it('a cancel during a tiled upscale stops it between tiles: run gone, tensors back to baseline', async () => {
    const gpu = service.worker!.get(GpuService);
    const runner = service.worker!.get(TaskRunner);
    // Thick's weights stay loaded once used: load them first so the baseline includes them.
    await service.worker!.get(ModelRepository).preload(['esrgan-thick-x4']);
    const baseline = gpu.tensorCount();
    const submitted = await service.http.post('/tasks/submit', {
      project_id: 'upscales',
      task_type: 'upscale_image',
      // 200² with best: 100 tiles of 24² at a few tenths of a second each, a minute or so.
      task_data: { image_url: `${base}/large.png`, scale: 4, quality: 'best' },
    });
    const id = submitted.body.task_id as string;
    await waitFor(
      async () => {
        const s = await status(id);
        return s.current_step === 'upscaling_image' && s.progress > 0.12 ? s : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 25, what: 'tiles being upscaled' },
    );
    expect(runner.runs.byTask(id)).toHaveLength(1);

    expect((await service.http.delete(`/tasks/${id}/cancel`)).status).toBe(200);
    const cancelledAt = Date.now();
    const stopped = await waitFor(
      async () => {
        const s = await status(id);
        if (s.status !== 'cancelled') return undefined;
        if (runner.runs.byTask(id).length > 0) return undefined;
        return gpu.tensorCount() === baseline ? Date.now() : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 10, what: 'cancelled, run gone, tensor baseline' },
    );
    // From the cancel's answer: the run notices it between tiles (one takes about half a second
    // on an idle machine); the bound leaves room for a loaded one. The API shares this process
    // and event loop, so the cancel's own Redis round trips also wait for tiles here.
    expect(stopped - cancelledAt).toBeLessThan(3000);
    const s = await status(id);
    expect(s).toMatchObject({ status: 'cancelled', result: null });
    expect(s.progress).toBeLessThan(0.5);
  });

  it('generate_image with upscale: 2 has the requested size; metadata names the model', async () => {
    const { final } = await run({
      project_id: 'upscales',
      task_type: 'generate_image',
      task_data: {
        character_description: 'A detective in the rain',
        width: 320,
        height: 192,
        upscale: 2,
        format: 'png',
        seed: 5,
      },
    });
    expect(final.status).toBe('completed');
    expect(final.result.metadata).toMatchObject({
      resolution: '320x192',
      upscaled_by: 2,
      upscale_model: 'esrgan-slim-x2',
      render_resolution: '160x96',
    });
    const { bytes } = await download(final.result.media_url);
    expect(await sharp(bytes).metadata()).toMatchObject({ format: 'png', width: 320, height: 192 });
  });

  it('generate_image refuses upscale 5, naming the field', async () => {
    const res = await service.http.post('/tasks/submit', {
      project_id: 'upscales',
      task_type: 'generate_image',
      task_data: { character_description: 'x', upscale: 5 },
    });
    expect(res.status).toBe(400);
    expect([res.body.message].flat().join('\n')).toMatch(/task_data\.upscale must be one of/);
  });
});
