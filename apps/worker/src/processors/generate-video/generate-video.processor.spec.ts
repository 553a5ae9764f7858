import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { GENERATE_VIDEO_TASK, validateTaskData, type GenerateVideoTaskData } from '@app/tasks';
import { TestFileServer } from '@app/testing';
import { extractFrame, probeMedia } from '../../media/video/media.probe';
import type { RunningTask } from '../../runtime/task-processor';
import { outputFile as file, startProcessor } from '../../../test/support/processor.harness';
import { GenerateVideoModule } from './generate-video.module';
import { GenerateVideoProcessor } from './generate-video.processor';

let counter = 0;

/** A running task whose data is `input` (over the spec's defaults) parsed by the contract. */
function runningTask(
  input: Record<string, unknown>,
  signal = new AbortController().signal,
): { task: RunningTask<GenerateVideoTaskData>; progress: [number, string][] } {
  const progress: [number, string][] = [];
  counter += 1;
  const task: RunningTask<GenerateVideoTaskData> = {
    taskId: `video-spec-${process.pid}-${counter}`,
    projectId: 'project-1',
    taskType: 'generate_video',
    attempt: 1,
    data: validateTaskData(GENERATE_VIDEO_TASK, {
      scene_description: 'Detective enters the dark alley',
      resolution: '160x90',
      duration: 1,
      fps: 12,
      ...input,
    }),
    signal,
    progress: async (fraction, step) => {
      signal.throwIfAborted();
      progress.push([fraction, step]);
    },
  };
  return { task, progress };
}

/** A picture with structure: a horizontal gradient in one colour, a bright square on the left. */
async function picture(
  r: number,
  g: number,
  b: number,
  width = 320,
  height = 180,
): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const k = 0.3 + (0.7 * x) / width;
      const square = x > width * 0.1 && x < width * 0.3 && y > height * 0.3 && y < height * 0.6;
      const at = (y * width + x) * 3;
      raw[at] = square ? 250 : r * k;
      raw[at + 1] = square ? 250 : g * k;
      raw[at + 2] = square ? 250 : b * k;
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

function mean(rgb: Buffer): [number, number, number] {
  const m = [0, 0, 0];
  for (let i = 0; i < rgb.length; i++) m[i % 3] += rgb[i];
  return m.map((v) => v / (rgb.length / 3)) as [number, number, number];
}

function meanAbsDiff(a: Buffer, b: Buffer): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

function leftovers(taskId: string): string[] {
  return readdirSync(os.tmpdir()).filter((f) => f.includes(taskId));
}

describe('GenerateVideoProcessor', () => {
  const files = new TestFileServer();
  let base = '';
  let processor: GenerateVideoProcessor;
  let close: () => Promise<void>;
  const outputs: string[] = [];

  beforeAll(async () => {
    Logger.overrideLogger(false);
    files.set('/red.png', { body: await picture(220, 40, 30), contentType: 'image/png' });
    files.set('/blue.png', { body: await picture(30, 60, 220), contentType: 'image/png' });
    files.set('/tall.jpg', {
      body: await sharp(await picture(40, 200, 60, 90, 300))
        .jpeg()
        .toBuffer(),
      contentType: 'image/jpeg',
    });
    files.set('/broken.png', { body: Buffer.from('not an image'), contentType: 'image/png' });
    base = await files.start();
    ({ processor, close } = await startProcessor(GenerateVideoModule, GenerateVideoProcessor));
  });

  afterAll(async () => {
    await close();
    await files.stop();
    await Promise.all(outputs.map((f) => rm(f, { force: true })));
    Logger.overrideLogger(new Logger());
  });

  const run = async (data: Record<string, unknown>) => {
    const { task, progress } = runningTask(data);
    const output = await processor.process(task);
    outputs.push(file(output));
    return { output, progress, task };
  };

  it('renders the storyboard as an H.264 MP4 of the requested size, rate and length', async () => {
    const { output, progress, task } = await run({
      storyboard_images: [`${base}/red.png`, `${base}/blue.png`],
      resolution: '160x90',
      duration: 2,
      fps: 12,
    });
    expect(output.media).toMatchObject({
      kind: 'file',
      extension: 'mp4',
      contentType: 'video/mp4',
    });
    const probed = await probeMedia(file(output));
    expect(probed.video).toEqual({
      codec: 'h264',
      pixelFormat: 'yuv420p',
      width: 160,
      height: 90,
      fps: 12,
      frames: 24,
    });
    expect(probed.audio).toBeUndefined();
    expect(output.metadata).toMatchObject({
      duration: 2,
      resolution: '160x90',
      fps: 12,
      frames: 24,
      format: 'MP4',
      codec: 'h264',
      backend: 'cpu',
      camera_preset: 'wide_shot',
      lighting_preset: 'natural',
      ignored_audio_cues: [],
    });

    // Steps in order, progress monotonic and moving with the frames.
    const steps = [...new Set(progress.map(([, s]) => s))];
    expect(steps).toEqual(['loading_models', 'processing_storyboard', 'generating_video']);
    const fractions = progress.map(([f]) => f);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(progress.filter(([, s]) => s === 'generating_video').length).toBeGreaterThan(2);

    // First shot red, last shot blue: the storyboard order is kept.
    const first = mean(await extractFrame(file(output), 0, { width: 160, height: 90 }));
    const last = mean(await extractFrame(file(output), 23, { width: 160, height: 90 }));
    expect(first[0]).toBeGreaterThan(first[2] + 40);
    expect(last[2]).toBeGreaterThan(last[0] + 40);
    expect(leftovers(task.taskId)).toEqual([expect.stringMatching(/\.mp4$/)]);
  });

  it('moves the camera as the preset says', async () => {
    const data = { storyboard_images: [`${base}/red.png`], duration: 2, resolution: '160x90' };
    const size = { width: 160, height: 90 };
    const pan = await run({ ...data, camera_angle: 'pan_left' });
    const start = await extractFrame(file(pan.output), 0, size);
    const end = await extractFrame(file(pan.output), 23, size);
    // pan_left starts on the right of the scene (brighter: the gradient rises to the right).
    expect(mean(start)[0]).toBeGreaterThan(mean(end)[0] + 10);

    const dolly = await run({ ...data, camera_angle: 'dolly_in' });
    const wide = await extractFrame(file(dolly.output), 0, size);
    const close = await extractFrame(file(dolly.output), 23, size);
    expect(meanAbsDiff(wide, close)).toBeGreaterThan(8);
    expect(dolly.output.metadata).toMatchObject({
      camera_angle: 'dolly_in',
      camera_preset: 'dolly_in',
    });

    const odd = await run({ ...data, camera_angle: 'dutch angle' });
    expect(odd.output.metadata).toMatchObject({
      camera_angle: 'dutch angle',
      camera_preset: 'wide_shot',
    });
  });

  it('grades the light by preset: noir is black and white, night is dark and blue', async () => {
    const data = { storyboard_images: [`${base}/red.png`], resolution: '160x90' };
    const size = { width: 160, height: 90 };
    const natural = mean(await extractFrame(file((await run(data)).output), 6, size));
    const noir = mean(
      await extractFrame(file((await run({ ...data, lighting: 'noir_dramatic' })).output), 6, size),
    );
    const night = mean(
      await extractFrame(file((await run({ ...data, lighting: 'night' })).output), 6, size),
    );
    expect(natural[0]).toBeGreaterThan(natural[2] + 40);
    expect(Math.abs(noir[0] - noir[1])).toBeLessThan(8);
    expect(night[0] + night[1] + night[2]).toBeLessThan(natural[0] + natural[1] + natural[2]);
    expect(night[2] / night[0]).toBeGreaterThan(natural[2] / natural[0]);
  });

  it('adds a synthesized AAC bed for known cues and lists the others', async () => {
    const { output } = await run({
      storyboard_images: [`${base}/tall.jpg`],
      audio_cues: ['footsteps', 'Rain ambience', 'thunder_crack', 'footsteps'],
    });
    const probed = await probeMedia(file(output));
    expect(probed.audio).toEqual({ codec: 'aac', sampleRate: 48_000, channels: 1 });
    expect(Math.abs(probed.duration - 1)).toBeLessThan(1 / 12);
    expect(output.metadata).toMatchObject({
      audio_codec: 'aac',
      ambience: ['footsteps', 'rain_ambience'],
      ignored_audio_cues: ['thunder_crack'],
    });
  });

  it('fails on a storyboard frame that is not an image, naming it, without retry', async () => {
    const { task } = runningTask({
      storyboard_images: [`${base}/red.png`, `${base}/broken.png`],
    });
    const err = await processor.process(task).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputFetchError);
    expect((err as InputFetchError).retryable).toBe(false);
    expect((err as Error).message).toMatch(
      /task_data\.storyboard_images\[1\].*not a decodable image/,
    );
    expect(leftovers(task.taskId)).toEqual([]);
  });

  it('stops on abort: ffmpeg killed, temp files released', async () => {
    const controller = new AbortController();
    const { task, progress } = runningTask(
      {
        storyboard_images: [`${base}/red.png`, `${base}/blue.png`],
        resolution: '640x360',
        duration: 30,
        fps: 24,
        audio_cues: ['wind'],
      },
      controller.signal,
    );
    const running = processor.process(task);
    const reason = new Error('cancelled');
    while (!progress.some(([f, s]) => s === 'generating_video' && f > 0.25)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(leftovers(task.taskId).sort()).toEqual([
      expect.stringMatching(/\.f32$/),
      expect.stringMatching(/\.mp4$/),
    ]);
    const stoppedAt = Date.now();
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(Date.now() - stoppedAt).toBeLessThan(1000);
    expect(leftovers(task.taskId)).toEqual([]);
    expect(existsSync(`${os.tmpdir()}/${task.taskId}`)).toBe(false);
  });
});
