import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { runTaskToEnd, TestFileServer } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { extractFrame } from '../src/media/video/media.probe';
import { encodeFigure, maskIoU, renderPersonFigure } from './support/person.figure';

/**
 * remove_background end to end, and render_animation layers with remove_background: real API,
 * real worker (segmentation networks on tfjs), inputs over HTTP, decoded outputs.
 */
describe('remove_background end to end', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'gpu_medium,gpu_heavy' } });
  const files = new TestFileServer();
  // A person (generate_image's figure) on a flat green background.
  const person = renderPersonFigure(400, 600);
  const downloads: string[] = [];
  let base = '';

  beforeAll(async () => {
    files.set('/actor.jpg', {
      body: await encodeFigure(person, 'jpeg'),
      contentType: 'image/jpeg',
    });
    files.set('/actor.png', { body: await encodeFigure(person, 'png'), contentType: 'image/png' });
    files.set('/notes.txt', { body: Buffer.from('not an image'), contentType: 'text/plain' });
    base = await files.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await files.stop();
    await Promise.all(downloads.map((f) => rm(f, { force: true })));
  });

  const run = (body: unknown) => runTaskToEnd(service.http, body, { timeoutMs: 110_000 });

  const download = async (mediaUrl: string, contentType: string) => {
    const media = await fetch(mediaUrl);
    expect(media.status).toBe(200);
    expect(media.headers.get('content-type')).toBe(contentType);
    return Buffer.from(await media.arrayBuffer());
  };

  it.each([
    ['best', 'png', 'image/png', 'person-segmentation-rvm'],
    ['fast', 'webp', 'image/webp', 'person-segmentation-selfie'],
  ] as const)(
    'quality %s, format %s: the person with alpha at full size, corners transparent',
    async (quality, format, contentType, model) => {
      const { id, final, seen } = await run({
        project_id: 'cutouts_e2e',
        task_type: 'remove_background',
        task_data: { image_url: `${base}/actor.jpg`, quality, format },
      });
      expect(final.status).toBe('completed');
      expect(final.result.media_url).toContain(
        `/projects/cutouts_e2e/image/${id}/output.${format}`,
      );
      expect(final.result.metadata).toMatchObject({
        resolution: '400x600',
        format: format.toUpperCase(),
        quality,
        model,
        version: '1',
        backend: expect.any(String),
        foreground_fraction: expect.any(Number),
        file_size: expect.any(Number),
      });
      expect(final.result.metadata.foreground_fraction).toBeCloseTo(person.coverage, 1);
      expect(seen.map((s) => s.step)).toContain('removing_background');

      const bytes = await download(final.result.media_url, contentType);
      expect(bytes.length).toBe(final.result.metadata.file_size);
      const meta = await sharp(bytes).metadata();
      expect(meta).toMatchObject({ format, width: 400, height: 600, hasAlpha: true, channels: 4 });
      const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      expect(info.channels).toBe(4);
      const alpha = Uint8Array.from({ length: 400 * 600 }, (_, i) => data[i * 4 + 3]);
      const alphaAt = (x: number, y: number) => alpha[y * 400 + x];
      // Inside the person: the chest and the head; outside: the four corners.
      expect(person.truth[200 * 400 + 200]).toBe(1);
      expect(alphaAt(200, 200)).toBeGreaterThan(230);
      expect(person.truth[75 * 400 + 200]).toBe(1);
      expect(alphaAt(200, 75)).toBeGreaterThan(230);
      for (const [x, y] of [
        [2, 2],
        [397, 2],
        [2, 597],
        [397, 597],
      ])
        expect(alphaAt(x, y)).toBeLessThan(10);
      expect(maskIoU(alpha, person.truth)).toBeGreaterThan(quality === 'best' ? 0.95 : 0.85);
    },
  );

  it('safety_check: the input and the cut-out are classified, scores in result.metadata.safety', async () => {
    const { final } = await run({
      project_id: 'cutouts_e2e',
      task_type: 'remove_background',
      task_data: { image_url: `${base}/actor.png`, quality: 'fast', safety_check: true },
    });
    expect(final.status).toBe('completed');
    expect(final.result.metadata.safety).toMatchObject({
      model: 'nsfw-mobilenet-v2',
      blocked: false,
      inputs: [{ field: 'task_data.image_url' }],
    });
  });

  it.each([
    [{}, /task_data\.image_url/],
    [{ image_url: 'ftp://example.com/a.jpg' }, /task_data\.image_url/],
    [{ image_url: 'http://example.com/../a.jpg' }, /task_data\.image_url.*traversal/],
    [{ image_url: 'https://example.com/a.jpg', quality: 'ultra' }, /task_data\.quality/],
    [{ image_url: 'https://example.com/a.jpg', format: 'jpeg' }, /task_data\.format/],
    [{ image_url: 'https://example.com/a.jpg', safety_check: 'yes' }, /task_data\.safety_check/],
  ])('refuses %j with a 400 naming the field', async (taskData, message) => {
    const res = await service.http.post('/tasks/submit', {
      project_id: 'cutouts_e2e',
      task_type: 'remove_background',
      task_data: taskData,
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.message)).toMatch(message);
  });

  it.each([
    [
      { remove_background: 'yes' },
      /task_data\.layers\.0\.remove_background|layers\[0\]\.remove_background/,
    ],
    [{ remove_background: true, remove_background_quality: 'ultra' }, /remove_background_quality/],
  ])(
    'render_animation refuses a layer with %j with a 400 naming the field',
    async (patch, message) => {
      const res = await service.http.post('/tasks/submit', {
        project_id: 'cutouts_e2e',
        task_type: 'render_animation',
        task_data: {
          layers: [{ image_url: 'https://example.com/a.png', keyframes: [{ time: 0 }], ...patch }],
        },
      });
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body.message)).toMatch(message);
    },
  );

  it('an input that is not an image fails the task naming the field', async () => {
    const { final } = await run({
      project_id: 'cutouts_e2e',
      task_type: 'remove_background',
      task_data: { image_url: `${base}/notes.txt` },
    });
    expect(final.status).toBe('failed');
    expect(JSON.stringify(final.error)).toMatch(/task_data\.image_url/);
  });

  it('render_animation: a layer with remove_background shows the background under its cut-away corners', async () => {
    // The same picture twice over blue, at a third of its size (133×200): as is on the left,
    // cut out on the right.
    const { final } = await run({
      project_id: 'cutouts_e2e',
      task_type: 'render_animation',
      task_data: {
        background: '#2040c0',
        resolution: '480x270',
        duration: 1,
        fps: 12,
        layers: [
          {
            image_url: `${base}/actor.png`,
            keyframes: [{ time: 0, x: 120, y: 135, scale: 1 / 3 }],
          },
          {
            image_url: `${base}/actor.png`,
            remove_background: true,
            keyframes: [{ time: 0, x: 360, y: 135, scale: 1 / 3 }],
          },
        ],
      },
    });
    expect(final.status).toBe('completed');
    expect(final.result.metadata).toMatchObject({
      layers: 2,
      removed_backgrounds: [{ layer: 1, model: 'person-segmentation-rvm', version: '1' }],
    });

    const bytes = await download(final.result.media_url, 'video/mp4');
    const file = path.join(os.tmpdir(), `cutout-e2e-${randomBytes(4).toString('hex')}.mp4`);
    await writeFile(file, bytes);
    downloads.push(file);
    const frame = await extractFrame(file, 6, { width: 480, height: 270 });
    const rgbAt = (x: number, y: number) => {
      const i = (y * 480 + x) * 3;
      return [frame[i], frame[i + 1], frame[i + 2]];
    };
    const near = (actual: number[], expected: number[], tolerance = 24) =>
      actual.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThanOrEqual(tolerance));
    // Corners inside each layer's area (133×200 around its centre).
    for (const [dx, dy] of [
      [-60, -94],
      [60, -94],
      [-60, 94],
      [60, 94],
    ]) {
      near(rgbAt(120 + dx, 135 + dy), [140, 199, 140]);
      near(rgbAt(360 + dx, 135 + dy), [0x20, 0x40, 0xc0]);
    }
    // The person is kept: the chest looks the same on both.
    near(rgbAt(360, 135 - 33), rgbAt(120, 135 - 33), 30);
  });
});
