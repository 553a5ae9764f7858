import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import {
  REMOVE_BACKGROUND_TASK,
  validateTaskData,
  type RemoveBackgroundTaskData,
} from '@app/tasks';
import { TestFileServer } from '@app/testing';
import { ModelRepository } from '@app/gpu';
import { PERSON_SEGMENTATION_MODELS } from '../../media/segmentation/person.segmenter';
import { encodeFigure, maskIoU, renderPersonFigure } from '../../../test/support/person.figure';
import type { RunningTask, TaskOutput } from '../../runtime/task-processor';
import { startProcessor, type StartedProcessor } from '../../../test/support/processor.harness';
import { RemoveBackgroundModule } from './remove-background.module';
import { RemoveBackgroundProcessor } from './remove-background.processor';

let counter = 0;

function runningTask(
  input: Record<string, unknown>,
  signal = new AbortController().signal,
): { task: RunningTask<RemoveBackgroundTaskData>; progress: [number, string][] } {
  const progress: [number, string][] = [];
  counter += 1;
  return {
    progress,
    task: {
      taskId: `cutout-spec-${process.pid}-${counter}`,
      projectId: 'project-1',
      taskType: 'remove_background',
      attempt: 1,
      data: validateTaskData(REMOVE_BACKGROUND_TASK, input),
      signal,
      progress: async (fraction, step) => {
        signal.throwIfAborted();
        progress.push([fraction, step]);
      },
    },
  };
}

async function decoded(output: TaskOutput) {
  if (output.media.kind !== 'buffer') throw new Error('expected a buffer');
  const meta = await sharp(output.media.data).metadata();
  const { data, info } = await sharp(output.media.data).raw().toBuffer({ resolveWithObject: true });
  const alpha = Uint8Array.from({ length: info.width * info.height }, (_, i) => data[i * 4 + 3]);
  return { meta, info, data, alpha };
}

describe('RemoveBackgroundProcessor', () => {
  const files = new TestFileServer();
  const figure = renderPersonFigure(360, 540);
  let base = '';
  let started: StartedProcessor<RemoveBackgroundProcessor>;

  beforeAll(async () => {
    Logger.overrideLogger(false);
    files.set('/person.jpg', {
      body: await encodeFigure(figure, 'jpeg'),
      contentType: 'image/jpeg',
    });
    // The same figure stored sideways with EXIF orientation 6 (display: rotate 90° clockwise).
    files.set('/sideways.jpg', {
      body: await sharp(figure.rgb, { raw: { width: 360, height: 540, channels: 3 } })
        .rotate(-90)
        .withMetadata({ orientation: 6 })
        .jpeg()
        .toBuffer(),
      contentType: 'image/jpeg',
    });
    base = await files.start();
    started = await startProcessor(RemoveBackgroundModule, RemoveBackgroundProcessor);
    // As a worker does at boot: the models the processor declared, loaded and warmed up.
    await started.get(ModelRepository).preload(Object.values(PERSON_SEGMENTATION_MODELS));
  });
  afterAll(async () => {
    await started.close();
    await files.stop();
    Logger.overrideLogger(new Logger());
  });

  it.each(['fast', 'best'] as const)(
    '%s: a PNG of the input with the person matte as alpha, at full resolution',
    async (quality) => {
      const before = started.gpu.tensorCount();
      const { task, progress } = runningTask({ image_url: `${base}/person.jpg`, quality });
      const output = await started.processor.process(task);
      expect(started.gpu.tensorCount()).toBe(before);

      expect(output.media).toMatchObject({ extension: 'png', contentType: 'image/png' });
      const { meta, info, data, alpha } = await decoded(output);
      expect(meta).toMatchObject({ format: 'png', hasAlpha: true, channels: 4 });
      expect([info.width, info.height]).toEqual([360, 540]);
      expect(maskIoU(alpha, figure.truth)).toBeGreaterThan(quality === 'best' ? 0.95 : 0.85);
      // The colour is the input's (JPEG-close) where the person is.
      const chest = (200 * 360 + 180) * 4;
      const src = (200 * 360 + 180) * 3;
      for (let c = 0; c < 3; c++)
        expect(Math.abs(data[chest + c] - figure.rgb[src + c])).toBeLessThan(12);
      expect(output.metadata).toMatchObject({
        resolution: '360x540',
        format: 'PNG',
        quality,
        model: quality === 'best' ? 'person-segmentation-rvm' : 'person-segmentation-selfie',
        version: '1',
        backend: started.gpu.backendName,
        network_resolution: quality === 'best' ? '360x540' : '256x256',
      });
      expect(output.metadata.foreground_fraction).toBeCloseTo(figure.coverage, 1);
      expect(progress.map(([, step]) => step)).toContain('removing_background');
    },
  );

  it('webp keeps the alpha; an EXIF-rotated input comes out upright', async () => {
    const { task } = runningTask({
      image_url: `${base}/sideways.jpg`,
      quality: 'fast',
      format: 'webp',
    });
    const output = await started.processor.process(task);
    expect(output.media).toMatchObject({ extension: 'webp', contentType: 'image/webp' });
    const { meta, info, alpha } = await decoded(output);
    expect(meta).toMatchObject({ format: 'webp', hasAlpha: true });
    expect([info.width, info.height]).toEqual([360, 540]);
    expect(maskIoU(alpha, figure.truth)).toBeGreaterThan(0.85);
  });

  it('a missing image fails naming the field', async () => {
    const { task } = runningTask({ image_url: `${base}/missing.png` });
    await expect(started.processor.process(task)).rejects.toThrow(/task_data\.image_url/);
  });

  it('stops when cancelled', async () => {
    const controller = new AbortController();
    controller.abort(new Error('cancelled by test'));
    const { task } = runningTask({ image_url: `${base}/person.jpg` }, controller.signal);
    await expect(started.processor.process(task)).rejects.toThrow('cancelled by test');
  });
});
