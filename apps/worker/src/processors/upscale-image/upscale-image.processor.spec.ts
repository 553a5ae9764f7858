import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { GpuService } from '@app/gpu';
import { UPSCALE_IMAGE_TASK, validateTaskData, type UpscaleImageTaskData } from '@app/tasks';
import { photoLikeImage, TestFileServer } from '@app/testing';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { PermanentTaskError } from '../../runtime/task-errors';
import {
  getProcessorModels,
  type RunningTask,
  type TaskOutput,
} from '../../runtime/task-processor';
import { startProcessor } from '../../../test/support/processor.harness';
import { UpscaleImageModule } from './upscale-image.module';
import { UpscaleImageProcessor } from './upscale-image.processor';

function runningTask(
  input: Record<string, unknown>,
  signal = new AbortController().signal,
): { task: RunningTask<UpscaleImageTaskData>; progress: [number, string][] } {
  const progress: [number, string][] = [];
  return {
    progress,
    task: {
      taskId: 'task-1',
      projectId: 'project-1',
      taskType: 'upscale_image',
      attempt: 1,
      data: validateTaskData(UPSCALE_IMAGE_TASK, input),
      signal,
      progress: async (fraction, step) => {
        progress.push([fraction, step]);
      },
    },
  };
}

function media(output: TaskOutput): Buffer {
  if (output.media.kind !== 'buffer') throw new Error('expected an in-memory image');
  return output.media.data;
}

describe('UpscaleImageProcessor', () => {
  let processor: UpscaleImageProcessor;
  let gpu: GpuService;
  let close: () => Promise<void>;
  const files = new TestFileServer();
  let base = '';

  beforeAll(async () => {
    Logger.overrideLogger(false);
    const frame = (w: number, h: number) =>
      sharp(photoLikeImage(w, h, 11), { raw: { width: w, height: h, channels: 3 } });
    files.set('/frame.png', {
      body: await frame(40, 30).png().toBuffer(),
      contentType: 'image/png',
    });
    files.set('/frame.jpg', {
      body: await frame(64, 48).jpeg().toBuffer(),
      contentType: 'image/jpeg',
    });
    files.set('/wide.png', {
      body: await frame(300, 200).png().toBuffer(),
      contentType: 'image/png',
    });
    // Left half opaque, right half transparent.
    const alpha = Buffer.alloc(40 * 30);
    for (let p = 0; p < alpha.length; p++) alpha[p] = p % 40 < 20 ? 255 : 0;
    files.set('/cutout.png', {
      body: await frame(40, 30)
        .joinChannel(alpha, { raw: { width: 40, height: 30, channels: 1 } })
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    // 2000×2000 is a valid input (4 MP) but ×4 makes 64 MP, over IMAGE_MAX_PIXELS (50 MP).
    files.set('/huge.png', {
      body: await sharp({
        create: { width: 2000, height: 2000, channels: 3, background: '#808080' },
      })
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    base = await files.start();
    ({ processor, gpu, close } = await startProcessor(UpscaleImageModule, UpscaleImageProcessor));
  });
  afterAll(async () => {
    await close();
    await files.stop();
    Logger.overrideLogger(new Logger());
  });

  it('declares slim and medium of every scale for preloading (thick loads on first use)', () => {
    expect([...getProcessorModels(UpscaleImageProcessor)].sort()).toEqual([
      'esrgan-medium-x2',
      'esrgan-medium-x3',
      'esrgan-medium-x4',
      'esrgan-slim-x2',
      'esrgan-slim-x3',
      'esrgan-slim-x4',
    ]);
  });

  it.each([
    ['png', 'png', 'image/png', 'PNG', 4, 'fast'],
    ['jpeg', 'jpg', 'image/jpeg', 'JPEG', 3, 'balanced'],
    ['webp', 'webp', 'image/webp', 'WEBP', 2, 'best'],
  ] as const)(
    '%s: the output is the input × scale, with its metadata',
    async (format, extension, contentType, label, scale, quality) => {
      const input = { image_url: `${base}/frame.png`, format, scale, quality };
      // The first run loads the model (its weights are tensors that stay); the second must
      // leave the count where it found it, and make the same bytes.
      const first = await processor.process(runningTask(input).task);
      const baseline = gpu.tensorCount();
      const { task, progress } = runningTask(input);
      const output = await processor.process(task);
      expect(gpu.tensorCount()).toBe(baseline);
      expect(media(output).equals(media(first))).toBe(true);
      expect(output.media).toMatchObject({ kind: 'buffer', extension, contentType });
      const meta = await sharp(media(output)).metadata();
      expect(meta).toMatchObject({ format, width: 40 * scale, height: 30 * scale });
      expect(output.metadata).toMatchObject({
        resolution: `${40 * scale}x${30 * scale}`,
        input_resolution: '40x30',
        output_resolution: `${40 * scale}x${30 * scale}`,
        format: label,
        scale,
        quality,
        model: `esrgan-${{ fast: 'slim', balanced: 'medium', best: 'thick' }[quality]}-x${scale}`,
        model_version: '1.0.0',
        backend: 'wasm',
        tiles: expect.any(Number),
        tile_size: expect.any(Number),
        alpha: false,
      });
      const fractions = progress.map(([f]) => f);
      expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
      expect(progress.map(([, s]) => s)).toContain('upscaling_image');
    },
  );

  it('reports progress per tile of a large input', async () => {
    const { task, progress } = runningTask({
      image_url: `${base}/wide.png`,
      scale: 2,
      quality: 'fast',
    });
    const output = await processor.process(task);
    expect(output.metadata).toMatchObject({
      tiles: 6,
      tile_size: 128,
      output_resolution: '600x400',
    });
    const tiles = progress.filter(([, s]) => s === 'upscaling_image');
    // One report when the tiles start, one per tile, one after encoding.
    expect(tiles.length).toBe(1 + 6 + 1);
  });

  it('keeps transparency for png; jpeg is flattened onto white', async () => {
    const png = await processor.process(
      runningTask({ image_url: `${base}/cutout.png`, format: 'png', scale: 2, quality: 'fast' })
        .task,
    );
    expect(png.metadata).toMatchObject({ alpha: true });
    const { data, info } = await sharp(media(png)).raw().toBuffer({ resolveWithObject: true });
    expect(info).toMatchObject({ width: 80, height: 60, channels: 4 });
    const alphaAt = (x: number, y: number) => data[(y * 80 + x) * 4 + 3];
    expect(alphaAt(10, 30)).toBe(255);
    expect(alphaAt(70, 30)).toBe(0);

    const jpeg = await processor.process(
      runningTask({ image_url: `${base}/cutout.png`, format: 'jpeg', scale: 2, quality: 'fast' })
        .task,
    );
    expect(jpeg.metadata).toMatchObject({ alpha: false });
    const rgb = await sharp(media(jpeg)).raw().toBuffer();
    // The transparent half became white.
    const at = (70 + 30 * 80) * 3;
    expect(Math.min(rgb[at], rgb[at + 1], rgb[at + 2])).toBeGreaterThan(240);
  });

  it('refuses an output above IMAGE_MAX_PIXELS before decoding, naming image_url and scale', async () => {
    const run = processor.process(runningTask({ image_url: `${base}/huge.png`, scale: 4 }).task);
    await expect(run).rejects.toBeInstanceOf(PermanentTaskError);
    await expect(run).rejects.toThrow(
      /task_data\.image_url is 2000x2000: task_data\.scale 4 would make it 8000x8000 \(64,000,000 pixels\), above the limit of 50,000,000/,
    );
  });

  it('an input that is not an image fails without retries, naming the field', async () => {
    files.set('/not-an-image.png', { body: Buffer.from('nope'), contentType: 'image/png' });
    const run = processor.process(runningTask({ image_url: `${base}/not-an-image.png` }).task);
    await expect(run).rejects.toBeInstanceOf(InputFetchError);
    await expect(run).rejects.toMatchObject({ retryable: false, field: 'task_data.image_url' });
  });

  it('a cancel between tiles stops the task with its reason; tensors back to baseline', async () => {
    const baseline = gpu.tensorCount();
    const controller = new AbortController();
    const reason = new Error('cancelled');
    const { task } = runningTask(
      { image_url: `${base}/wide.png`, scale: 2, quality: 'fast' },
      controller.signal,
    );
    let tiles = 0;
    const run = processor.process({
      ...task,
      progress: async (fraction, step) => {
        if (step === 'upscaling_image' && fraction > 0.1 && ++tiles === 2) controller.abort(reason);
        if (controller.signal.aborted) throw controller.signal.reason;
      },
    });
    await expect(run).rejects.toBe(reason);
    expect(tiles).toBe(2);
    expect(gpu.tensorCount()).toBe(baseline);
  });
});
