import { Logger } from '@nestjs/common';
import sharp, { type Metadata } from 'sharp';
import { AppConfig } from '@app/config';
import { UPSCALE_IMAGE_TASK, type UpscaleImageTaskData } from '@app/tasks';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { InputFetcher } from '../../inputs/input-fetcher';
import {
  encodeImage,
  IMAGE_ENCODINGS,
  imageMedia,
  imageMetadata,
} from '../../media/image/image.encoding';
import { ImageUpscaler } from '../../media/image/image.upscaler';
import { PermanentTaskError } from '../../runtime/task-errors';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';

const FIELD = 'task_data.image_url';

// Progress milestones: tiles fill DECODED .. UPSCALED, encoding ends at ENCODED.
const FETCHED = 0.08;
const DECODED = 0.1;
const UPSCALED = 0.9;
const ENCODED = 0.95;

/**
 * upscale_image: ESRGAN super-resolution (fast/balanced/best = slim/medium/thick) of one input
 * image, tiled by ImageUpscaler. An alpha channel is kept for png/webp (resized by Lanczos: the
 * networks see RGB only) and flattened onto white for jpeg. Thick (29 MB per scale, ~1 s to load
 * and warm up here) loads on first use; slim and medium are declared for preloading.
 */
@TaskProcessorFor(UPSCALE_IMAGE_TASK, {
  models: ImageUpscaler.modelNames(['fast', 'balanced']),
})
export class UpscaleImageProcessor implements TaskProcessor<UpscaleImageTaskData> {
  private readonly logger = new Logger(UpscaleImageProcessor.name);

  constructor(
    private readonly config: AppConfig,
    private readonly inputs: InputFetcher,
    private readonly upscaler: ImageUpscaler,
  ) {}

  async process(task: RunningTask<UpscaleImageTaskData>): Promise<TaskOutput> {
    const { image_url: url, scale, quality, format } = task.data;
    const fields = { task_id: task.taskId, project_id: task.projectId };
    task.signal.throwIfAborted();
    const started = Date.now();

    await task.progress(0, 'fetching_image');
    const { data } = await this.inputs.fetch(url, {
      field: FIELD,
      signal: task.signal,
      accept: 'image',
      projectId: task.projectId,
    });
    // safety_check: the input is classified too (the runtime checks the upscaled output itself).
    await task.safety?.checkInputs([{ field: FIELD, data }], task.signal);
    await task.progress(FETCHED, 'decoding_image');
    const input = await this.decode(data, url, scale, format !== 'jpeg');
    const alpha = input.alpha;
    await task.progress(DECODED, 'upscaling_image');

    const up = await this.upscaler.upscale({
      pixels: input.rgb,
      width: input.width,
      height: input.height,
      scale,
      quality,
      signal: task.signal,
      label: `task_id=${task.taskId}`,
      onTile: (done, total) =>
        task.progress(DECODED + ((UPSCALED - DECODED) * done) / total, 'upscaling_image'),
    });
    task.signal.throwIfAborted();

    let pixels = up.pixels;
    if (alpha) {
      const bigAlpha = await sharp(alpha, {
        raw: { width: input.width, height: input.height, channels: 1 },
      })
        .resize(up.width, up.height, { kernel: 'lanczos3' })
        // One band out: sharp would otherwise write a single-band image as sRGB.
        .extractChannel(0)
        .raw()
        .toBuffer();
      pixels = await sharp(up.pixels, {
        raw: { width: up.width, height: up.height, channels: 3 },
        limitInputPixels: false,
      })
        .joinChannel(bigAlpha, { raw: { width: up.width, height: up.height, channels: 1 } })
        .raw()
        .toBuffer();
    }
    const encoding = IMAGE_ENCODINGS[format];
    const image = await encodeImage(pixels, up.width, up.height, alpha ? 4 : 3, format);
    await task.progress(ENCODED, 'upscaling_image');

    const elapsed = Date.now() - started;
    this.logger.log(
      fields,
      `${input.width}x${input.height} → ${up.width}x${up.height} ${encoding.label} with ${up.model} ` +
        `(${up.tiles} tile(s) of ${up.tileSize}, ${up.ms} ms) in ${elapsed} ms on ${up.backend}`,
    );
    return {
      media: imageMedia(image, encoding),
      metadata: {
        ...imageMetadata(encoding, up.width, up.height),
        input_resolution: `${input.width}x${input.height}`,
        output_resolution: `${up.width}x${up.height}`,
        scale,
        quality,
        model: up.model,
        model_version: up.version,
        backend: up.backend,
        tiles: up.tiles,
        tile_size: up.tileSize,
        tile_overlap: up.overlap,
        alpha: alpha !== undefined,
        upscale_ms: up.ms,
        render_ms: elapsed,
      },
    };
  }

  /**
   * The input as RGB (and its alpha when kept), upright (EXIF orientation applied). Its output
   * size is checked against IMAGE_MAX_PIXELS from the header, before anything is decoded.
   */
  private async decode(
    data: Buffer,
    url: string,
    scale: number,
    keepAlpha: boolean,
  ): Promise<{ rgb: Buffer; alpha?: Buffer; width: number; height: number }> {
    let meta: Metadata;
    try {
      meta = await sharp(data).metadata();
    } catch (err) {
      throw InputFetchError.undecodableImage(FIELD, url, err);
    }
    const { width = 0, height = 0 } = meta;
    const limit = this.config.fetch.imageMaxPixels;
    const out = width * scale * (height * scale);
    if (out > limit) {
      throw new PermanentTaskError(
        `${FIELD} is ${width}x${height}: task_data.scale ${scale} would make it ` +
          `${width * scale}x${height * scale} (${out.toLocaleString('en')} pixels), above the ` +
          `limit of ${limit.toLocaleString('en')} pixels (IMAGE_MAX_PIXELS); use a smaller scale ` +
          `or input`,
      );
    }
    try {
      const upright = sharp(data).rotate().toColourspace('srgb');
      if (keepAlpha && meta.hasAlpha) {
        const { data: rgba, info } = await upright
          .ensureAlpha()
          .raw()
          .toBuffer({ resolveWithObject: true });
        const n = info.width * info.height;
        const rgb = Buffer.alloc(n * 3);
        const alpha = Buffer.alloc(n);
        for (let p = 0; p < n; p++) {
          rgb[p * 3] = rgba[p * 4];
          rgb[p * 3 + 1] = rgba[p * 4 + 1];
          rgb[p * 3 + 2] = rgba[p * 4 + 2];
          alpha[p] = rgba[p * 4 + 3];
        }
        return { rgb, alpha, width: info.width, height: info.height };
      }
      const { data: rgb, info } = await upright
        .flatten({ background: '#ffffff' })
        .raw()
        .toBuffer({ resolveWithObject: true });
      return { rgb, width: info.width, height: info.height };
    } catch (err) {
      throw InputFetchError.undecodableImage(FIELD, url, err);
    }
  }
}
