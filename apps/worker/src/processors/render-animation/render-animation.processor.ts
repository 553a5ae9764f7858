import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import {
  HEX_COLOUR,
  parseResolution,
  RENDER_ANIMATION_TASK,
  videoTiming,
  type RenderAnimationTaskData,
} from '@app/tasks';
import { InputFetcher } from '../../inputs/input-fetcher';
import {
  animationFramesPerBatch,
  compositeFrame,
  premultiplied,
  type LayerDraw,
  type LayerPlacement,
  type PremultipliedLayer,
} from '../../media/animation/layer.compositor';
import {
  applyMatte,
  PersonSegmenter,
  type PersonMatte,
} from '../../media/segmentation/person.segmenter';
import { FfmpegEncoder } from '../../media/video/ffmpeg.encoder';
import {
  decodeCover,
  decodeRgba,
  fetchImages,
  type DecodedImage,
  type ImageInput,
} from '../../media/video/image.inputs';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';
import { KeyframeTrack } from './keyframe.track';

/** A layer never needs more pixels than this on its long side ... */
const MAX_LAYER_SIDE = 4096;
/** ... and all layers together stay within this many decoded pixels (16 bytes each as floats). */
const LAYER_PIXEL_BUDGET = 32_000_000;
/** A remove_background layer is segmented from its picture at up to this long side. */
const SEGMENT_SIDE = 1024;

// Progress milestones: frames fill RENDER_FROM .. RENDER_TO, the mux ends at ENCODED.
const LOADED = 0.15;
const RENDER_FROM = 0.2;
const RENDER_TO = 0.9;
const ENCODED = 0.94;

interface Layer {
  image: PremultipliedLayer;
  track: KeyframeTrack;
  /** Native pixels per decoded pixel: keyframe scales refer to the native size. */
  scale: number;
}

/** What the segmentation of a `remove_background` layer reports in the metadata. */
interface Cutout {
  layer: number;
  model: string;
  version: string;
  network_resolution: string;
  foreground_fraction: number;
}

/**
 * Keyframed layer animations: each layer's keyframes are interpolated with its easing, and the
 * layer is warped by an affine transform per frame (bilinear) and composited over the background
 * with premultiplied alpha by plain typed-array loops over only the pixels it can touch
 * (media/animation/layer.compositor.ts), in batches of frames that stream into ffmpeg.
 */
@TaskProcessorFor(RENDER_ANIMATION_TASK)
export class RenderAnimationProcessor implements TaskProcessor<RenderAnimationTaskData> {
  private readonly logger = new Logger(RenderAnimationProcessor.name);

  constructor(
    private readonly inputs: InputFetcher,
    private readonly segmenter: PersonSegmenter,
  ) {}

  async process(task: RunningTask<RenderAnimationTaskData>): Promise<TaskOutput> {
    const data = task.data;
    const { width, height } = parseResolution(data.resolution);
    const { fps, frames, duration } = videoTiming(data.duration, data.fps);
    const background = data.background;
    const backgroundColour = HEX_COLOUR.test(background) ? hexToRgb(background) : undefined;
    const fields = { task_id: task.taskId, project_id: task.projectId };
    task.signal.throwIfAborted();
    const started = Date.now();

    await task.progress(0.01, 'fetching_layers');
    const output = path.join(
      os.tmpdir(),
      `movie-task-animation-${task.taskId}-${randomBytes(4).toString('hex')}.mp4`,
    );

    const render = (async () => {
      const requests = data.layers.map((l, i) => ({
        field: `task_data.layers[${i}].image_url`,
        url: l.image_url,
      }));
      if (!backgroundColour) requests.push({ field: 'task_data.background', url: background });
      const images = await fetchImages(this.inputs, requests, {
        projectId: task.projectId,
        signal: task.signal,
        onFetched: (done) =>
          task.progress(0.01 + ((LOADED - 0.01) * done) / requests.length, 'fetching_layers'),
      });
      const start: LayerPlacement = {
        x: width / 2,
        y: height / 2,
        scale: 1,
        rotation: 0,
        opacity: 1,
      };
      const tracks = data.layers.map((l) => new KeyframeTrack(l.keyframes, l.easing, start));
      const cutoutLayers = data.layers.filter((l) => l.remove_background).length;
      const cutouts: Cutout[] = [];
      // A layer with remove_background is segmented once, from its picture at up to
      // SEGMENT_SIDE (a layer shown small is still segmented from enough pixels), and the matte,
      // scaled to the decoded layer, multiplies its alpha before it is premultiplied.
      const cutOut = async (index: number, img: ImageInput, rgba: DecodedImage) => {
        const layer = data.layers[index];
        if (!layer.remove_background) return;
        await task.progress(
          LOADED + ((RENDER_FROM - LOADED) * cutouts.length) / cutoutLayers,
          'removing_backgrounds',
        );
        const fit = Math.min(1, SEGMENT_SIDE / Math.max(img.width, img.height));
        const sw = Math.max(1, Math.round(img.width * fit));
        const sh = Math.max(1, Math.round(img.height * fit));
        const source = sw <= rgba.width && sh <= rgba.height ? rgba : await decodeRgba(img, sw, sh);
        const matte: PersonMatte = await this.segmenter.segment(
          { data: source.data, width: source.width, height: source.height, channels: 4 },
          layer.remove_background_quality,
          task.signal,
          rgba,
        );
        cutouts.push({
          layer: index,
          model: matte.model,
          version: matte.version,
          network_resolution: matte.networkResolution,
          foreground_fraction: Number(applyMatte(rgba.data, matte.alpha).toFixed(4)),
        });
      };
      const layers = await loadLayers(
        images.slice(0, tracks.length),
        tracks,
        { width, height },
        cutOut,
      );
      const backdrop = backgroundColour
        ? solidFrame(backgroundColour, width, height)
        : (await decodeCover(images[tracks.length], width, height)).data;
      task.signal.throwIfAborted();
      await task.progress(RENDER_FROM, 'rendering_animation');

      const encoder = FfmpegEncoder.start({ width, height, fps, output, signal: task.signal });
      const frameBytes = width * height * 3;
      const batch = animationFramesPerBatch(width, height);
      const bytes = new Uint8Array(batch * frameBytes);
      const row = new Float32Array(width * 3);
      let composited = 0;
      // Where the time goes (logged): compositing frames, waiting for ffmpeg.
      let renderMs = 0;
      let encodeWaitMs = 0;
      try {
        for (let first = 0; first < frames; first += batch) {
          task.signal.throwIfAborted();
          const t0 = Date.now();
          const count = Math.min(batch, frames - first);
          for (let k = 0; k < count; k++) {
            const time = (first + k) / fps;
            const draws: LayerDraw[] = layers.map((layer) => {
              const p = layer.track.at(time);
              return { layer: layer.image, placement: { ...p, scale: p.scale * layer.scale } };
            });
            composited += compositeFrame(
              bytes,
              k * frameBytes,
              width,
              height,
              backdrop,
              draws,
              row,
            );
          }
          const t1 = Date.now();
          renderMs += t1 - t0;
          await encoder.write(bytes.subarray(0, count * frameBytes));
          encodeWaitMs += Date.now() - t1;
          const done = first + count;
          await task.progress(
            RENDER_FROM + ((RENDER_TO - RENDER_FROM) * done) / frames,
            'rendering_animation',
          );
        }
        const t2 = Date.now();
        await encoder.finish();
        encodeWaitMs += Date.now() - t2;
      } catch (err) {
        // Kills ffmpeg (if the abort signal has not already) and waits until it is gone.
        await encoder.abort();
        throw err;
      }
      return { composited, renderMs, encodeWaitMs, cutouts };
    })();
    let stats: Awaited<typeof render>;
    try {
      stats = await render;
      // Inside the try: a cancel this report learns of must not leave the encoded file behind.
      await task.progress(ENCODED, 'rendering_animation');
    } catch (err) {
      await rm(output, { force: true });
      throw err;
    }

    const elapsed = Date.now() - started;
    this.logger.log(
      fields,
      `${frames} frames ${width}x${height}@${fps} (${duration.toFixed(2)} s), ` +
        `${data.layers.length} layer(s) (${stats.composited} layer-frames drawn) in ${elapsed} ms ` +
        `(frames composited by typed-array loops ${stats.renderMs} ms, waiting for ffmpeg ` +
        `${stats.encodeWaitMs} ms)`,
    );
    return {
      media: { kind: 'file', path: output, extension: 'mp4', contentType: 'video/mp4' },
      metadata: {
        duration: Number(duration.toFixed(3)),
        resolution: `${width}x${height}`,
        fps,
        frames,
        format: 'MP4',
        codec: 'h264',
        pixel_format: 'yuv420p',
        // Frames are composited by plain loops on the CPU, whatever tfjs backend the worker has.
        backend: 'cpu',
        layers: data.layers.length,
        background: backgroundColour ? background.toLowerCase() : 'image',
        // Layers cut out by a person segmentation network (tfjs, on the worker's backend).
        ...(stats.cutouts.length > 0
          ? { removed_backgrounds: stats.cutouts, segmentation_backend: this.segmenter.backend }
          : {}),
        render_ms: elapsed,
      },
    };
  }
}

/**
 * Decodes each layer no larger than it is ever shown (its largest keyframe scale, at most twice
 * the canvas and MAX_LAYER_SIDE, all layers within LAYER_PIXEL_BUDGET) and keeps it
 * premultiplied.
 */
async function loadLayers(
  images: readonly ImageInput[],
  tracks: readonly KeyframeTrack[],
  canvas: { width: number; height: number },
  prepare: (index: number, image: ImageInput, rgba: DecodedImage) => Promise<void>,
): Promise<Layer[]> {
  const wanted = images.map((img, i) => {
    const long = Math.max(img.width, img.height);
    const shown = Math.min(long * tracks[i].maxScale, 2 * Math.max(canvas.width, canvas.height));
    return Math.min(1, Math.max(shown, 1) / long, MAX_LAYER_SIDE / long);
  });
  const pixels = images.reduce((sum, img, i) => sum + img.width * img.height * wanted[i] ** 2, 0);
  const shrink = pixels > LAYER_PIXEL_BUDGET ? Math.sqrt(LAYER_PIXEL_BUDGET / pixels) : 1;
  const layers: Layer[] = [];
  for (const [i, img] of images.entries()) {
    const factor = wanted[i] * shrink;
    const w = Math.max(1, Math.round(img.width * factor));
    const h = Math.max(1, Math.round(img.height * factor));
    const rgba = await decodeRgba(img, w, h);
    await prepare(i, img, rgba);
    layers.push({
      image: premultiplied(rgba.data, rgba.width, rgba.height),
      track: tracks[i],
      scale: img.width / rgba.width,
    });
  }
  return layers;
}

/** A frame of one colour, rgb24. */
function solidFrame(rgb: [number, number, number], width: number, height: number): Uint8Array {
  const frame = new Uint8Array(width * height * 3);
  for (let i = 0; i < 3; i++) frame[i] = rgb[i];
  // Doubling copies: a handful of native copies fill the frame.
  for (let filled = 3; filled < frame.length; filled *= 2) {
    frame.copyWithin(filled, 0, Math.min(filled, frame.length - filled));
  }
  return frame;
}

/** `#123` or `#112233` → byte values. */
function hexToRgb(hex: string): [number, number, number] {
  const digits = hex.slice(1);
  const full = digits.length === 3 ? [...digits].map((d) => d + d).join('') : digits;
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)) as [number, number, number];
}
