import { readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { RENDER_ANIMATION_TASK, validateTaskData, type RenderAnimationTaskData } from '@app/tasks';
import { TestFileServer } from '@app/testing';
import { extractFrame, probeMedia } from '../../media/video/media.probe';
import type { RunningTask } from '../../runtime/task-processor';
import { encodeFigure, renderPersonFigure } from '../../../test/support/person.figure';
import { outputFile as file, startProcessor } from '../../../test/support/processor.harness';
import { RenderAnimationModule } from './render-animation.module';
import { RenderAnimationProcessor } from './render-animation.processor';

const SIZE = { width: 160, height: 90 };
let counter = 0;

/** A running task whose data is `input` (over the spec's defaults) parsed by the contract. */
function runningTask(
  input: Record<string, unknown>,
  signal = new AbortController().signal,
): { task: RunningTask<RenderAnimationTaskData>; progress: [number, string][] } {
  const progress: [number, string][] = [];
  counter += 1;
  return {
    progress,
    task: {
      taskId: `animation-spec-${process.pid}-${counter}`,
      projectId: 'project-1',
      taskType: 'render_animation',
      attempt: 1,
      data: validateTaskData(RENDER_ANIMATION_TASK, {
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
    },
  };
}

/** The rgb of the pixel at (x, y) of a decoded frame. */
function at(frame: Buffer, x: number, y: number): number[] {
  const i = (y * SIZE.width + x) * 3;
  return [frame[i], frame[i + 1], frame[i + 2]];
}

function near(actual: number[], expected: number[], tolerance = 10): void {
  actual.forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThanOrEqual(tolerance));
}

describe('RenderAnimationProcessor', () => {
  const files = new TestFileServer();
  let base = '';
  let processor: RenderAnimationProcessor;
  let close: () => Promise<void>;
  const outputs: string[] = [];
  const person = renderPersonFigure(240, 360);

  beforeAll(async () => {
    Logger.overrideLogger(false);
    // A 20×20 opaque yellow square, and a 40×40 disc of blue with transparent corners.
    files.set('/square.png', {
      body: await sharp({
        create: {
          width: 20,
          height: 20,
          channels: 4,
          background: { r: 250, g: 220, b: 0, alpha: 1 },
        },
      })
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    files.set('/disc.png', {
      body: await sharp(
        Buffer.from(
          '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="20" fill="#0000ff"/></svg>',
        ),
      )
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    files.set('/backdrop.jpg', {
      body: await sharp({
        create: { width: 320, height: 180, channels: 3, background: { r: 20, g: 140, b: 60 } },
      })
        .jpeg()
        .toBuffer(),
      contentType: 'image/jpeg',
    });
    // A person (the generate_image figure) on a flat green background, 240×360.
    files.set('/person.png', {
      body: await encodeFigure(person, 'png'),
      contentType: 'image/png',
    });
    base = await files.start();
    ({ processor, close } = await startProcessor(RenderAnimationModule, RenderAnimationProcessor));
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

  it('moves, turns and fades layers over a colour as the keyframes say', async () => {
    const { output, progress } = await run({
      background: '#112233',
      duration: 2,
      layers: [
        {
          image_url: `${base}/square.png`,
          easing: 'linear',
          keyframes: [
            { time: 0, x: 20, y: 45, scale: 1 },
            { time: 2, x: 140, y: 45, scale: 2, rotation: 90 },
          ],
        },
        {
          image_url: `${base}/disc.png`,
          easing: 'ease_in_out',
          keyframes: [
            { time: 0, x: 80, y: 20, opacity: 1 },
            { time: 1, opacity: 0 },
          ],
        },
      ],
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
    expect(output.metadata).toMatchObject({
      duration: 2,
      resolution: '160x90',
      fps: 12,
      frames: 24,
      format: 'MP4',
      codec: 'h264',
      backend: 'cpu',
      layers: 2,
      background: '#112233',
    });
    const steps = [...new Set(progress.map(([, s]) => s))];
    expect(steps).toEqual(['fetching_layers', 'rendering_animation']);

    const first = await extractFrame(file(output), 0, SIZE);
    near(at(first, 150, 80), [0x11, 0x22, 0x33]);
    near(at(first, 20, 45), [250, 220, 0], 16);
    near(at(first, 80, 20), [0, 0, 255], 24);
    // The disc's transparent corner shows the background.
    near(at(first, 62, 3), [0x11, 0x22, 0x33]);

    const last = await extractFrame(file(output), 23, SIZE);
    near(at(last, 20, 45), [0x11, 0x22, 0x33]);
    // At the end the square is twice as large (40×40) around (140, 45).
    near(at(last, 140, 45), [250, 220, 0], 16);
    near(at(last, 124, 30), [250, 220, 0], 16);
    // The disc has faded out.
    near(at(last, 80, 20), [0x11, 0x22, 0x33]);
  });

  it.each(['best', 'fast'] as const)(
    'remove_background (%s) cuts the person out of a layer: its flat background is gone',
    async (quality) => {
      // The same picture twice at a quarter of its size (60×90): as is on the left, cut out on
      // the right, over red.
      const { output, progress } = await run({
        background: '#cc2222',
        duration: 1,
        layers: [
          {
            image_url: `${base}/person.png`,
            keyframes: [{ time: 0, x: 40, y: 45, scale: 0.25 }],
          },
          {
            image_url: `${base}/person.png`,
            remove_background: true,
            remove_background_quality: quality,
            keyframes: [{ time: 0, x: 120, y: 45, scale: 0.25 }],
          },
        ],
      });
      expect(output.metadata).toMatchObject({
        layers: 2,
        removed_backgrounds: [
          {
            layer: 1,
            model: quality === 'best' ? 'person-segmentation-rvm' : 'person-segmentation-selfie',
            version: '1',
          },
        ],
      });
      const cut = (
        output.metadata.removed_backgrounds as Array<{ foreground_fraction: number }>
      )[0];
      expect(cut.foreground_fraction).toBeCloseTo(person.coverage, 1);
      expect(new Set(progress.map(([, s]) => s))).toContain('removing_backgrounds');

      const frame = await extractFrame(file(output), 0, SIZE);
      // Corners of the layers' areas: green as drawn on the left, the red background on the right.
      for (const [dx, dy] of [
        [-27, -42],
        [27, -42],
        [-27, 42],
        [27, 42],
      ]) {
        near(at(frame, 40 + dx, 45 + dy), [140, 199, 140], 24);
        near(at(frame, 120 + dx, 45 + dy), [0xcc, 0x22, 0x22], 24);
      }
      // The person itself is kept: the outfit at the belly (layer pixel 30, 50 of 60×90).
      expect(person.truth[200 * 240 + 120]).toBe(1);
      const belly = at(frame, 120, 50);
      near(belly, at(frame, 40, 50), 30);
      expect(belly[2]).toBeGreaterThan(belly[0]);
    },
  );

  it('covers the frame with a background image and fetches a repeated URL once', async () => {
    const before = files.hits.get('/square.png') ?? 0;
    const { output } = await run({
      background: `${base}/backdrop.jpg`,
      layers: [
        { image_url: `${base}/square.png`, keyframes: [{ time: 0, x: 40, y: 45 }] },
        { image_url: `${base}/square.png`, keyframes: [{ time: 0, x: 120, y: 45 }] },
      ],
    });
    expect(files.hits.get('/square.png')).toBe(before + 1);
    expect(output.metadata).toMatchObject({ background: 'image', layers: 2 });
    const frame = await extractFrame(file(output), 6, SIZE);
    near(at(frame, 5, 5), [20, 140, 60]);
    near(at(frame, 40, 45), [250, 220, 0], 16);
    near(at(frame, 120, 45), [250, 220, 0], 16);
  });

  it('stops on abort with its files released', async () => {
    const controller = new AbortController();
    const { task, progress } = runningTask(
      {
        resolution: '640x360',
        duration: 30,
        fps: 30,
        layers: [
          {
            image_url: `${base}/disc.png`,
            keyframes: [
              { time: 0, x: 0, y: 0, scale: 4 },
              { time: 30, x: 640, y: 360, scale: 8, rotation: 3600 },
            ],
          },
        ],
      },
      controller.signal,
    );
    const running = processor.process(task);
    while (!progress.some(([f, s]) => s === 'rendering_animation' && f > 0.25)) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const reason = new Error('cancelled');
    const stoppedAt = Date.now();
    controller.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(Date.now() - stoppedAt).toBeLessThan(1000);
    expect(readdirSync(os.tmpdir()).filter((f) => f.includes(task.taskId))).toEqual([]);
  });

  it('a cancel learnt from the report after encoding leaves no output file behind', async () => {
    const { task } = runningTask({
      background: '#102030',
      layers: [{ image_url: `${base}/disc.png`, keyframes: [{ time: 0, x: 80, y: 45 }] }],
    });
    const cancelled = new Error('task cancelled');
    const failing: RunningTask<RenderAnimationTaskData> = {
      ...task,
      // The last report (encoding done) is the one that learns of the cancel.
      progress: (fraction) => (fraction >= 0.9 ? Promise.reject(cancelled) : Promise.resolve()),
    };
    await expect(processor.process(failing)).rejects.toBe(cancelled);
    expect(readdirSync(os.tmpdir()).filter((f) => f.includes(task.taskId))).toEqual([]);
  });
});
