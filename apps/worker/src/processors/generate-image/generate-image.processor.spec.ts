import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { TestFileServer } from '@app/testing';
import { GpuService } from '@app/gpu';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { GENERATE_IMAGE_TASK, validateTaskData, type GenerateImageTaskData } from '@app/tasks';
import type { RunningTask, TaskOutput } from '../../runtime/task-processor';
import { startProcessor } from '../../../test/support/processor.harness';
import { GenerateImageModule } from './generate-image.module';
import { GenerateImageProcessor } from './generate-image.processor';

const W = 96;
const H = 64;
const DETECTIVE = 'Detective in 1920s noir style';

interface Run {
  task: RunningTask<GenerateImageTaskData>;
  progress: [number, string][];
}

/** A running task whose data is `input` (over the spec's defaults) parsed by the contract. */
function runningTask(input: Record<string, unknown>, signal = new AbortController().signal): Run {
  const progress: [number, string][] = [];
  const task: RunningTask<GenerateImageTaskData> = {
    taskId: 'task-1',
    projectId: 'project-1',
    taskType: 'generate_image',
    attempt: 1,
    data: validateTaskData(GENERATE_IMAGE_TASK, {
      character_description: DETECTIVE,
      width: W,
      height: H,
      seed: 42,
      ...input,
    }),
    signal,
    progress: async (fraction, step) => {
      progress.push([fraction, step]);
    },
  };
  return { task, progress };
}

function media(output: TaskOutput): Buffer {
  if (output.media.kind !== 'buffer') throw new Error('expected an in-memory image');
  return output.media.data;
}

async function pixels(output: TaskOutput): Promise<Buffer> {
  return sharp(media(output)).removeAlpha().raw().toBuffer();
}

function meanAbsDiff(a: Buffer, b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function meanRgb(raw: Buffer): [number, number, number] {
  const m = [0, 0, 0];
  for (let i = 0; i < raw.length; i++) m[i % 3] += raw[i];
  return m.map((v) => v / (raw.length / 3)) as [number, number, number];
}

/** A solid-colour PNG: a reference whose palette is unmistakable. */
function solid(r: number, g: number, b: number): Promise<Buffer> {
  return sharp({ create: { width: 40, height: 30, channels: 3, background: { r, g, b } } })
    .png()
    .toBuffer();
}

describe('GenerateImageProcessor', () => {
  let processor: GenerateImageProcessor;
  let gpu: GpuService;
  const files = new TestFileServer();
  let base: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    Logger.overrideLogger(false);
    const images: Record<string, Buffer> = {
      '/teal.png': await solid(0, 160, 150),
      '/orange.png': await solid(240, 120, 20),
      '/clear.png': await sharp({
        create: { width: 20, height: 20, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
      })
        .png()
        .toBuffer(),
      '/broken.png': Buffer.from('not an image at all'),
    };
    for (const [path, body] of Object.entries(images))
      files.set(path, { body, contentType: 'image/png' });
    base = await files.start();

    ({ processor, gpu, close } = await startProcessor(GenerateImageModule, GenerateImageProcessor));
  });

  afterAll(async () => {
    await close();
    await files.stop();
    Logger.overrideLogger(new Logger());
  });

  it('runs on the wasm backend here', () => {
    expect(gpu.backendName).toBe('wasm');
  });

  it.each([
    ['jpeg', 'jpg', 'image/jpeg', 'JPEG'],
    ['png', 'png', 'image/png', 'PNG'],
    ['webp', 'webp', 'image/webp', 'WEBP'],
  ] as const)('encodes %s at the requested size', async (format, extension, contentType, label) => {
    const output = await processor.process(runningTask({ format }).task);

    expect(output.media).toMatchObject({ kind: 'buffer', extension, contentType });
    const meta = await sharp(media(output)).metadata();
    expect(meta).toMatchObject({
      width: W,
      height: H,
      format: format === 'jpeg' ? 'jpeg' : format,
    });
    expect(output.metadata).toMatchObject({
      resolution: `${W}x${H}`,
      format: label,
      width: W,
      height: H,
      seed: 42,
      backend: 'wasm',
      model: 'cppn-v1',
      palette_source: 'generated',
    });
  });

  it('defaults to a 1024x1024 jpeg', async () => {
    const { task } = runningTask({});
    const data = validateTaskData(GENERATE_IMAGE_TASK, {
      character_description: DETECTIVE,
      seed: 1,
    });
    const output = await processor.process({ ...task, data });
    const meta = await sharp(media(output)).metadata();
    expect(meta).toMatchObject({ width: 1024, height: 1024, format: 'jpeg' });
  });

  it('is byte-identical for the same inputs and seed, and derives a seed when absent', async () => {
    const a = await processor.process(
      runningTask({ pose: 'walking', lighting: 'golden_hour' }).task,
    );
    const b = await processor.process(
      runningTask({ pose: 'walking', lighting: 'golden_hour' }).task,
    );
    expect(media(a).equals(media(b))).toBe(true);

    const c = await processor.process(runningTask({ seed: undefined }).task);
    const d = await processor.process(runningTask({ seed: undefined }).task);
    expect(c.metadata.seed).toEqual(expect.any(Number));
    expect(c.metadata.seed_source).toBe('derived');
    expect(c.metadata.seed).toBe(d.metadata.seed);
    expect(media(c).equals(media(d))).toBe(true);
  });

  it('draws a visibly different image for a different description', async () => {
    const a = await pixels(await processor.process(runningTask({ format: 'png' }).task));
    const b = await pixels(
      await processor.process(
        runningTask({ format: 'png', character_description: 'A cheerful space pirate captain' })
          .task,
      ),
    );
    const again = await pixels(await processor.process(runningTask({ format: 'png' }).task));
    expect(meanAbsDiff(a, again)).toBe(0);
    expect(meanAbsDiff(a, b)).toBeGreaterThan(12);
  });

  it('grades the image by lighting preset and records unknown presets as neutral', async () => {
    const plain = await processor.process(runningTask({ format: 'png' }).task);
    const noir = await processor.process(
      runningTask({ format: 'png', lighting: 'noir_dramatic' }).task,
    );
    const odd = await processor.process(
      runningTask({ format: 'png', lighting: 'candle-lit haze' }).task,
    );

    expect(meanAbsDiff(await pixels(plain), await pixels(noir))).toBeGreaterThan(12);
    expect(noir.metadata).toMatchObject({
      lighting: 'noir_dramatic',
      lighting_preset: 'noir_dramatic',
    });
    expect(odd.metadata).toMatchObject({ lighting: 'candle-lit haze', lighting_preset: 'neutral' });
    expect(media(odd).equals(media(plain))).toBe(true);
    // Noir is greyscale: channels nearly equal.
    const [r, g, b] = meanRgb(await pixels(noir));
    expect(Math.abs(r - g) + Math.abs(g - b)).toBeLessThan(12);
  });

  it('changes the figure with the pose preset', async () => {
    const standing = await processor.process(
      runningTask({ format: 'png', pose: 'standing_relaxed' }).task,
    );
    const action = await processor.process(runningTask({ format: 'png', pose: 'action' }).task);
    expect(action.metadata.pose_preset).toBe('action');
    expect(meanAbsDiff(await pixels(standing), await pixels(action))).toBeGreaterThan(8);
  });

  it('transfers the palette of reference images served over http', async () => {
    const plain = meanRgb(
      await pixels(await processor.process(runningTask({ format: 'png' }).task)),
    );
    const teal = await processor.process(
      runningTask({ format: 'png', reference_images: [`${base}/teal.png`] }).task,
    );
    const orange = await processor.process(
      runningTask({
        format: 'png',
        style_guide: `${base}/orange.png`,
        reference_images: [`${base}/teal.png`],
      }).task,
    );

    expect(teal.metadata.palette_source).toBe('reference_images');
    expect(orange.metadata.palette_source).toBe('style_guide+reference_images');
    const t = meanRgb(await pixels(teal));
    const o = meanRgb(await pixels(orange));
    // Teal pulls towards green-blue over red; the orange style guide outweighs the teal reference.
    expect(t[1] - t[0]).toBeGreaterThan(plain[1] - plain[0] + 10);
    expect(o[0] - o[2]).toBeGreaterThan(t[0] - t[2] + 30);
    expect(o[0]).toBeGreaterThan(o[2]);
  });

  it('fails with an InputFetchError naming the field when a reference 404s', async () => {
    const before = gpu.tensorCount();
    const error = await processor
      .process(
        runningTask({ reference_images: [`${base}/teal.png`, `${base}/missing.png?token=secret`] })
          .task,
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(InputFetchError);
    const err = error as InputFetchError;
    expect(err.field).toBe('task_data.reference_images[1]');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('task_data.reference_images[1]');
    expect(err.message).toContain(`${base}/missing.png`);
    expect(err.message).not.toContain('secret');
    expect(gpu.tensorCount()).toBe(before);
  });

  it('copes with a wholly transparent reference', async () => {
    const output = await processor.process(
      runningTask({ reference_images: [`${base}/clear.png`] }).task,
    );
    expect(output.metadata.palette).toEqual(
      expect.arrayContaining([expect.stringMatching(/^#[0-9a-f]{6}$/)]),
    );
  });

  it('fails an undecodable reference as a permanent input error naming the field', async () => {
    const error = await processor
      .process(runningTask({ style_guide: `${base}/broken.png` }).task)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(InputFetchError);
    expect(error).toMatchObject({ field: 'task_data.style_guide', retryable: false });
    expect((error as Error).message).toContain('not a decodable image');
  });

  it('rejects with the abort reason when the signal is already aborted', async () => {
    const reason = new Error('cancelled');
    const { task, progress } = runningTask({}, AbortSignal.abort(reason));
    await expect(processor.process(task)).rejects.toBe(reason);
    expect(progress).toEqual([]);
  });

  it('stops between bands when cancelled mid-way and frees its tensors', async () => {
    const before = gpu.tensorCount();
    const controller = new AbortController();
    const reason = new Error('cancelled mid-way');
    const { task } = runningTask({ width: 512, height: 512 }, controller.signal);
    const bands: number[] = [];
    const cancelling: RunningTask<GenerateImageTaskData> = {
      ...task,
      progress: async (fraction, step) => {
        bands.push(fraction);
        if (step === 'generating_image' && fraction > 0.4) controller.abort(reason);
      },
    };
    await expect(processor.process(cancelling)).rejects.toBe(reason);
    expect(Math.max(...bands)).toBeLessThan(0.9);
    expect(gpu.tensorCount()).toBe(before);
  });

  it('reports monotonic progress ending in generating_image, and returns tensors to baseline', async () => {
    const before = gpu.tensorCount();
    const { task, progress } = runningTask({
      width: 256,
      height: 256,
      style_guide: `${base}/orange.png`,
      reference_images: [`${base}/teal.png`],
    });
    await processor.process(task);

    expect(gpu.tensorCount()).toBe(before);
    const fractions = progress.map(([f]) => f);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    const steps = [...new Set(progress.map(([, s]) => s))];
    expect(steps).toEqual(['loading_models', 'fetching_references', 'generating_image']);
    const [lastFraction, lastStep] = progress[progress.length - 1];
    expect(lastFraction).toBeGreaterThanOrEqual(0.9);
    expect(lastStep).toBe('generating_image');
    expect(progress.filter(([, s]) => s === 'generating_image').length).toBeGreaterThan(3);
  });
  it.each([2, 3] as const)(
    'upscale %i: renders smaller, ESRGAN brings it to the requested size, metadata says so',
    async (upscale) => {
      const native = await processor.process(runningTask({ format: 'png' }).task);
      const { task, progress } = runningTask({ format: 'png', upscale });
      const output = await processor.process(task);
      expect(await sharp(media(output)).metadata()).toMatchObject({ width: W, height: H });
      expect(output.metadata).toMatchObject({
        resolution: `${W}x${H}`,
        upscaled_by: upscale,
        upscale_model: `esrgan-slim-x${upscale}`,
        render_resolution: `${Math.ceil(W / upscale)}x${Math.ceil(H / upscale)}`,
      });
      expect(progress.map(([, step]) => step)).toContain('upscaling_image');
      const fractions = progress.map(([f]) => f);
      expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
      // The same character: at a quarter of the size, the two renders look alike.
      const thumb = (o: TaskOutput) =>
        sharp(media(o)).resize(24, 16).removeAlpha().raw().toBuffer();
      expect(meanAbsDiff(await thumb(output), await thumb(native))).toBeLessThan(20);
    },
  );
});
