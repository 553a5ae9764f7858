import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { runTaskToEnd, TestFileServer } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { extractFrame, probeMedia } from '../src/media/video/media.probe';

/** render_animation end to end: real API, real worker (tfjs + ffmpeg), layers over HTTP. */
describe('render_animation end to end', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'gpu_heavy' } });
  const files = new TestFileServer();
  const downloads: string[] = [];
  let base = '';

  beforeAll(async () => {
    // An opaque orange 32×32 square; a white 64×64 star-ish disc with transparent corners.
    files.set('/square.png', {
      body: await sharp({
        create: {
          width: 32,
          height: 32,
          channels: 4,
          background: { r: 255, g: 128, b: 0, alpha: 1 },
        },
      })
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    files.set('/disc.png', {
      body: await sharp(
        Buffer.from(
          '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle cx="32" cy="32" r="32" fill="#ffffff"/></svg>',
        ),
      )
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    files.set('/sky.jpg', {
      body: await sharp({
        create: { width: 960, height: 540, channels: 3, background: { r: 40, g: 90, b: 160 } },
      })
        .jpeg()
        .toBuffer(),
      contentType: 'image/jpeg',
    });
    base = await files.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await files.stop();
    await Promise.all(downloads.map((f) => rm(f, { force: true })));
  });

  const run = (body: unknown) => runTaskToEnd(service.http, body, { timeoutMs: 110_000 });

  const download = async (mediaUrl: string, size: number) => {
    const media = await fetch(mediaUrl);
    expect(media.status).toBe(200);
    expect(media.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await media.arrayBuffer());
    expect(bytes.length).toBe(size);
    const file = path.join(os.tmpdir(), `animation-e2e-${randomBytes(4).toString('hex')}.mp4`);
    await writeFile(file, bytes);
    downloads.push(file);
    return file;
  };

  const rgbAt = (frame: Buffer, width: number, x: number, y: number) => {
    const i = (y * width + x) * 3;
    return [frame[i], frame[i + 1], frame[i + 2]];
  };
  const expectNear = (actual: number[], expected: number[], tolerance = 14) =>
    actual.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThanOrEqual(tolerance));

  it('keyframed layers with easing over a colour: a 320x180, 2 s, 24 fps H.264 MP4', async () => {
    const { id, final, seen } = await run({
      project_id: 'motion_comics',
      task_type: 'render_animation',
      task_data: {
        background: '#112233',
        resolution: '320x180',
        duration: 2,
        fps: 24,
        layers: [
          {
            image_url: `${base}/square.png`,
            easing: 'ease_in_out',
            keyframes: [
              { time: 0, x: 40, y: 90, scale: 1, rotation: 0 },
              { time: 2, x: 280, y: 90, scale: 2, rotation: 180 },
            ],
          },
          {
            image_url: `${base}/disc.png`,
            easing: 'linear',
            keyframes: [
              { time: 0, x: 160, y: 40, opacity: 0 },
              { time: 1, opacity: 1 },
            ],
          },
        ],
      },
    });
    expect(final.status).toBe('completed');
    expect(final.result.media_url).toContain(`/projects/motion_comics/animation/${id}/output.mp4`);
    expect(final.result.metadata).toMatchObject({
      duration: 2,
      resolution: '320x180',
      fps: 24,
      frames: 48,
      format: 'MP4',
      codec: 'h264',
      backend: 'cpu',
      layers: 2,
      background: '#112233',
      file_size: expect.any(Number),
    });
    expect(seen.map((s) => s.step)).toContain('rendering_animation');
    expect(files.hits.get('/square.png')).toBe(1);
    expect(files.hits.get('/disc.png')).toBe(1);

    const file = await download(final.result.media_url, final.result.metadata.file_size);
    const probed = await probeMedia(file);
    expect(probed.video).toEqual({
      codec: 'h264',
      pixelFormat: 'yuv420p',
      width: 320,
      height: 180,
      fps: 24,
      frames: 48,
    });
    expect(Math.abs(probed.duration - 2)).toBeLessThanOrEqual(1 / 24);

    const size = { width: 320, height: 180 };
    const first = await extractFrame(file, 0, size);
    const last = await extractFrame(file, 47, size);
    expectNear(rgbAt(first, 320, 5, 5), [0x11, 0x22, 0x33]);
    expectNear(rgbAt(first, 320, 40, 90), [255, 128, 0]);
    // The disc starts invisible and is fully there from 1 s.
    expectNear(rgbAt(first, 320, 160, 40), [0x11, 0x22, 0x33]);
    expectNear(rgbAt(last, 320, 160, 40), [255, 255, 255]);
    // The square ends twice as large (64×64) around (280, 90).
    expectNear(rgbAt(last, 320, 40, 90), [0x11, 0x22, 0x33]);
    expectNear(rgbAt(last, 320, 280, 90), [255, 128, 0]);
    expectNear(rgbAt(last, 320, 254, 66), [255, 128, 0]);
  });

  it('the default 1920x1080, 7 s, 24 fps animation over an image background', async () => {
    const { final } = await run({
      project_id: 'motion_comics',
      task_type: 'render_animation',
      task_data: {
        background: `${base}/sky.jpg`,
        layers: [
          {
            image_url: `${base}/disc.png`,
            easing: 'ease_out',
            keyframes: [
              { time: 0, x: -100, y: 800, scale: 3 },
              { time: 7, x: 2000, y: 300, scale: 6, rotation: 360 },
            ],
          },
          {
            image_url: `${base}/square.png`,
            keyframes: [{ time: 0, x: 960, y: 540, scale: 4, rotation: 45, opacity: 0.8 }],
          },
        ],
      },
    });
    expect(final.status).toBe('completed');
    expect(final.result.metadata).toMatchObject({
      duration: 7,
      resolution: '1920x1080',
      fps: 24,
      frames: 168,
      background: 'image',
    });
    expect(files.hits.get('/sky.jpg')).toBe(1);
    const file = await download(final.result.media_url, final.result.metadata.file_size);
    const probed = await probeMedia(file);
    expect(probed.video).toEqual({
      codec: 'h264',
      pixelFormat: 'yuv420p',
      width: 1920,
      height: 1080,
      fps: 24,
      frames: 168,
    });
    expect(Math.abs(probed.duration - 7)).toBeLessThanOrEqual(1 / 24);
    const frame = await extractFrame(file, 84, { width: 1920, height: 1080 });
    expectNear(rgbAt(frame, 1920, 20, 20), [40, 90, 160]);
    // The square, 128 px and turned 45°, sits in the middle at 80% over the sky.
    expectNear(rgbAt(frame, 1920, 960, 540), [212, 120, 32]);
  });

  it.each([
    [{ layers: [] }, /task_data\.layers must contain at least 1 elements/],
    [
      {
        layers: Array.from({ length: 33 }, () => ({
          image_url: 'https://x.test/a.png',
          keyframes: [{ time: 0 }],
        })),
      },
      /task_data\.layers must contain no more than 32 elements/,
    ],
    [
      {
        layers: [{ image_url: 'https://x.test/a.png', keyframes: [{ time: 0 }], easing: 'bounce' }],
      },
      /task_data\.layers\.0\.easing must be one of the following values/,
    ],
    [
      { layers: [{ image_url: 'https://x.test/a.png', keyframes: [{ time: 0, opacity: 2 }] }] },
      /task_data\.layers\.0\.keyframes\.0\.opacity must not be greater than 1/,
    ],
    [
      { layers: [{ image_url: 'https://x.test/a.png', keyframes: [] }] },
      /task_data\.layers\.0\.keyframes must contain at least 1 elements/,
    ],
    [
      { layers: [{ image_url: 'https://x.test/a.png', keyframes: [{ time: 0, spin: 1 }] }] },
      /task_data\.layers\.0\.keyframes\.0\.spin/,
    ],
    [
      {
        layers: [{ image_url: 'https://x.test/a.png', keyframes: [{ time: 0 }] }],
        background: 'red',
      },
      /task_data\.background must be/,
    ],
    [
      {
        layers: [{ image_url: 'https://x.test/a.png', keyframes: [{ time: 0 }] }],
        background: '#12345',
      },
      /task_data\.background must be a colour like #112233 or an image URL/,
    ],
    [
      {
        layers: [{ image_url: 'https://x.test/a.png', keyframes: [{ time: 0 }] }],
        resolution: '4000x2000',
      },
      /task_data\.resolution/,
    ],
  ])('refuses %j with a 400 naming the field', async (taskData, message) => {
    const res = await service.http.post('/tasks/submit', {
      project_id: 'motion_comics',
      task_type: 'render_animation',
      task_data: taskData,
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.message)).toMatch(message);
  });
});
