import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { GpuService } from '@app/gpu';
import { GENERATE_IMAGE_TASK, type GenerateImageTaskData } from '@app/tasks';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { InputFetcher } from '../../inputs/input-fetcher';
import {
  encodeImage,
  IMAGE_ENCODINGS,
  imageMedia,
  imageMetadata,
} from '../../media/image/image.encoding';
import { ImageUpscaler } from '../../media/image/image.upscaler';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';
import { CharacterRenderer, MODEL_NAME, type PaletteInputs } from './character.renderer';
import { deriveSeed } from './seeded.random';

/** Side of the thumbnails palettes are computed from. */
const THUMBNAIL = 64;

// Progress milestones: bands fill FETCHED (or LOADED) .. BANDS_DONE, encoding ends at GENERATED.
const LOADED = 0.1;
const FETCHED = 0.3;
const BANDS_DONE = 0.9;
/** With `upscale`, the bands end here and the upscaler's tiles fill up to BANDS_DONE. */
const BANDS_DONE_BEFORE_UPSCALE = 0.6;
const GENERATED = 0.95;

/**
 * Character design images: a CPPN run on tfjs draws a posed figure over a background, textured
 * and coloured from the description and seed, with the palette of the style guide and references
 * and a lighting grade. Renders in row bands and yields between them so the event loop (and the
 * job lock renewal) keeps running during a 2048² image.
 */
@TaskProcessorFor(GENERATE_IMAGE_TASK, { models: ImageUpscaler.modelNames(['fast']) })
export class GenerateImageProcessor implements TaskProcessor<GenerateImageTaskData> {
  private readonly logger = new Logger(GenerateImageProcessor.name);

  constructor(
    private readonly gpu: GpuService,
    private readonly inputs: InputFetcher,
    private readonly upscaler: ImageUpscaler,
  ) {}

  async process(task: RunningTask<GenerateImageTaskData>): Promise<TaskOutput> {
    const data = task.data;
    const { width, height, format } = data;
    // With `upscale` the CPPN draws the image smaller and ESRGAN brings it to the requested size.
    const factor = data.upscale ?? 1;
    const renderWidth = Math.ceil(width / factor);
    const renderHeight = Math.ceil(height / factor);
    const bandsDone = factor > 1 ? BANDS_DONE_BEFORE_UPSCALE : BANDS_DONE;
    // Size and format stay out of the derived seed: the CPPN is resolution-independent, so the
    // same request at another size draws the same character.
    const seed =
      data.seed ??
      deriveSeed([
        data.character_description,
        data.style_guide ?? null,
        data.reference_images ?? [],
        data.pose ?? null,
        data.lighting ?? null,
      ]);
    const fields = { task_id: task.taskId, project_id: task.projectId };
    throwIfAborted(task.signal);
    const started = Date.now();
    await this.gpu.init();

    const { pixels, summary } = await this.gpu.scoped(
      `generate_image task_id=${task.taskId}`,
      async (scope) => {
        await task.progress(0.05, 'loading_models');
        const renderer = CharacterRenderer.create(this.gpu.tf, scope, {
          width: renderWidth,
          height: renderHeight,
          seed,
          description: data.character_description,
          pose: data.pose,
          lighting: data.lighting,
        });
        await task.progress(LOADED, 'loading_models');

        const palette = await this.fetchPalette(task);
        if (palette) renderer.usePalette(palette);
        throwIfAborted(task.signal);

        const from = palette ? FETCHED : LOADED;
        await task.progress(from, 'generating_image');
        const out = Buffer.alloc(renderWidth * renderHeight * 3);
        let reported = from;
        for (let row = 0; row < renderHeight; row += renderer.bandRows) {
          throwIfAborted(task.signal);
          renderer.renderBand(row, Math.min(renderer.bandRows, renderHeight - row), out);
          const done = Math.min(renderHeight, row + renderer.bandRows) / renderHeight;
          const fraction = from + (bandsDone - from) * done;
          // A dozen-odd updates per image is plenty; each one is a Redis write.
          if (fraction - reported >= 0.05) {
            reported = fraction;
            await task.progress(fraction, 'generating_image');
          }
          // Let timers and I/O (BullMQ lock renewal, cancel messages) run between bands.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        return { pixels: out, summary: renderer.summary() };
      },
    );

    throwIfAborted(task.signal);
    let final: Buffer = pixels;
    let upscaled: Record<string, unknown> = {};
    if (data.upscale) {
      const up = await this.upscaler.upscale({
        pixels,
        width: renderWidth,
        height: renderHeight,
        scale: data.upscale,
        quality: 'fast',
        signal: task.signal,
        label: `task_id=${task.taskId}`,
        onTile: (done, total) =>
          task.progress(bandsDone + ((BANDS_DONE - bandsDone) * done) / total, 'upscaling_image'),
      });
      // ceil() may overshoot by up to factor-1 pixels per side: keep the centre.
      final = cropCentre(up.pixels, up.width, up.height, width, height);
      upscaled = {
        upscaled_by: factor,
        upscale_model: up.model,
        upscale_model_version: up.version,
        render_resolution: `${renderWidth}x${renderHeight}`,
        upscale_tiles: up.tiles,
        upscale_ms: up.ms,
      };
    }
    throwIfAborted(task.signal);
    const encoding = IMAGE_ENCODINGS[format];
    const image = await encodeImage(final, width, height, 3, format);
    await task.progress(GENERATED, 'generating_image');

    const elapsed = Date.now() - started;
    this.logger.log(
      fields,
      `${width}x${height} ${encoding.label} (${image.length} bytes) in ${elapsed} ms ` +
        `on ${this.gpu.backendName}, seed ${seed}, pose ${summary.pose_preset}, lighting ${summary.lighting_preset}`,
    );
    return {
      media: imageMedia(image, encoding),
      metadata: {
        ...imageMetadata(encoding, width, height),
        seed,
        seed_source: data.seed === undefined ? 'derived' : 'request',
        model: MODEL_NAME,
        backend: this.gpu.backendName,
        pose: data.pose ?? null,
        lighting: data.lighting ?? null,
        ...summary,
        ...upscaled,
        render_ms: elapsed,
      },
    };
  }

  /** Style guide and references as RGBA thumbnails, fetched in parallel; undefined if none. */
  private async fetchPalette(
    task: RunningTask<GenerateImageTaskData>,
  ): Promise<PaletteInputs | undefined> {
    const { style_guide: guide, reference_images: refs = [] } = task.data;
    const wanted = [
      ...(guide ? [{ field: 'task_data.style_guide', url: guide }] : []),
      ...refs.map((url, i) => ({ field: `task_data.reference_images[${i}]`, url })),
    ];
    if (wanted.length === 0) return undefined;

    await task.progress(LOADED, 'fetching_references');
    // The first failure stops the other downloads.
    const stop = new AbortController();
    const signal = AbortSignal.any([task.signal, stop.signal]);
    let done = 0;
    try {
      const fetched = await Promise.all(
        wanted.map(async ({ field, url }) => {
          const { data } = await this.inputs.fetch(url, {
            field,
            signal,
            accept: 'image',
            projectId: task.projectId,
          });
          const pixels = await thumbnail(data, field, url);
          done += 1;
          if (!signal.aborted)
            await task.progress(
              LOADED + ((FETCHED - LOADED) * done) / wanted.length,
              'fetching_references',
            );
          return { field, data, pixels };
        }),
      );
      // safety_check: every input in one batch of the classifier (an unsafe one blocks the task).
      await task.safety?.checkInputs(
        fetched.map(({ field, data }) => ({ field, data })),
        task.signal,
      );
      const thumbnails = fetched.map((f) => f.pixels);
      return {
        styleGuide: guide ? thumbnails[0] : undefined,
        references: guide ? thumbnails.slice(1) : thumbnails,
      };
    } catch (err) {
      stop.abort(err);
      // A cancelled task reports its own reason, not whichever download noticed first.
      throwIfAborted(task.signal);
      throw err;
    }
  }
}

/** Throws the abort reason itself: the runner tells cancellation from timeout by it. */
function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

async function thumbnail(data: Buffer, field: string, url: string): Promise<Uint8Array> {
  try {
    // The fetcher already refused images above IMAGE_MAX_PIXELS from their header; this is the
    // decoder's own bound (sharp's default, 268 MP) should a header lie.
    return await sharp(data)
      .resize(THUMBNAIL, THUMBNAIL, { fit: 'fill' })
      .toColourspace('srgb')
      .ensureAlpha()
      .raw()
      .toBuffer();
  } catch (err) {
    throw InputFetchError.undecodableImage(field, url, err);
  }
}

/** The centre `width` × `height` of an RGB image (no copy when the sizes match). */
function cropCentre(pixels: Buffer, w: number, h: number, width: number, height: number): Buffer {
  if (w === width && h === height) return pixels;
  const left = Math.floor((w - width) / 2);
  const top = Math.floor((h - height) / 2);
  const out = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * w + left) * 3;
    pixels.copy(out, y * width * 3, from, from + width * 3);
  }
  return out;
}
