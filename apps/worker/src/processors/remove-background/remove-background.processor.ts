import { Logger } from '@nestjs/common';
import sharp, { type Sharp } from 'sharp';
import {
  REMOVE_BACKGROUND_TASK,
  type CutoutFormat,
  type RemoveBackgroundTaskData,
} from '@app/tasks';
import { InputFetcher } from '../../inputs/input-fetcher';
import {
  applyMatte,
  PERSON_SEGMENTATION_MODELS,
  PersonSegmenter,
} from '../../media/segmentation/person.segmenter';
import { decodeRgba, fetchImages } from '../../media/video/image.inputs';
import { imageMedia, imageMetadata } from '../../media/image/image.encoding';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';

const ENCODINGS: Record<
  CutoutFormat,
  {
    extension: string;
    contentType: string;
    label: string;
    encode: (image: Sharp) => Sharp;
  }
> = {
  png: { extension: 'png', contentType: 'image/png', label: 'PNG', encode: (i) => i.png() },
  // Lossy colour, full-quality alpha: the matte's soft edge survives.
  webp: {
    extension: 'webp',
    contentType: 'image/webp',
    label: 'WEBP',
    encode: (i) => i.webp({ quality: 90, alphaQuality: 100 }),
  },
};

// Progress milestones.
const FETCHED = 0.2;
const DECODED = 0.3;
const SEGMENTED = 0.8;
const ENCODED = 0.95;

/**
 * Person cut-outs: the input image with the person matte of a segmentation network (MediaPipe
 * Selfie for `fast`, Robust Video Matting for `best`) as its alpha channel, at the input's full
 * resolution, PNG or WebP.
 */
@TaskProcessorFor(REMOVE_BACKGROUND_TASK, { models: Object.values(PERSON_SEGMENTATION_MODELS) })
export class RemoveBackgroundProcessor implements TaskProcessor<RemoveBackgroundTaskData> {
  private readonly logger = new Logger(RemoveBackgroundProcessor.name);

  constructor(
    private readonly inputs: InputFetcher,
    private readonly segmenter: PersonSegmenter,
  ) {}

  async process(task: RunningTask<RemoveBackgroundTaskData>): Promise<TaskOutput> {
    const { image_url: url, quality, format } = task.data;
    const fields = { task_id: task.taskId, project_id: task.projectId };
    task.signal.throwIfAborted();
    const started = Date.now();

    await task.progress(0.02, 'fetching_image');
    const [input] = await fetchImages(this.inputs, [{ field: 'task_data.image_url', url }], {
      projectId: task.projectId,
      signal: task.signal,
    });
    // safety_check: the input is classified too (the runtime checks the cut-out itself).
    await task.safety?.checkInputs([{ field: input.field, data: input.data }], task.signal);
    await task.progress(FETCHED, 'fetching_image');
    // Upright (EXIF orientation applied), transparency kept, at its own size.
    const rgba = await decodeRgba(input, input.width, input.height);
    task.signal.throwIfAborted();

    await task.progress(DECODED, 'removing_background');
    const matte = await this.segmenter.segment(
      { data: rgba.data, width: rgba.width, height: rgba.height, channels: 4 },
      quality,
      task.signal,
    );
    const foreground = applyMatte(rgba.data, matte.alpha);
    await task.progress(SEGMENTED, 'removing_background');

    const encoding = ENCODINGS[format];
    const image = await encoding
      .encode(sharp(rgba.data, { raw: { width: rgba.width, height: rgba.height, channels: 4 } }))
      .toBuffer();
    await task.progress(ENCODED, 'removing_background');

    const elapsed = Date.now() - started;
    this.logger.log(
      fields,
      `${rgba.width}x${rgba.height} cut-out ${encoding.label} (${image.length} bytes) by ` +
        `${matte.model}@${matte.version} on ${matte.backend} (network input ${matte.networkResolution}, ` +
        `${Math.round(matte.inferenceMs)} ms) in ${elapsed} ms; foreground ${(foreground * 100).toFixed(1)}%`,
    );
    return {
      media: imageMedia(image, encoding),
      metadata: {
        ...imageMetadata(encoding, rgba.width, rgba.height),
        quality,
        model: matte.model,
        version: matte.version,
        backend: matte.backend,
        network_resolution: matte.networkResolution,
        foreground_fraction: Number(foreground.toFixed(4)),
        inference_ms: Math.round(matte.inferenceMs),
        render_ms: elapsed,
      },
    };
  }
}
