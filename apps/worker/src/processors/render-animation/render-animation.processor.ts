import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import type * as TfCore from '@tensorflow/tfjs-core';
import { GpuService, type TensorScope } from '@app/gpu';
import { InputFetcher } from '@app/storage';
import { HEX_COLOUR, parseResolution, videoTiming, type RenderAnimationTaskData } from '@app/tasks';
import { FfmpegEncoder } from '../../media/video/ffmpeg.encoder';
import {
  compositeLayer,
  framesPerBatch,
  layerRegion,
  toRgb24,
  type LayerPlacement,
} from '../../media/video/frame.compositor';
import {
  decodeCover,
  decodeRgba,
  fetchImages,
  type ImageInput,
} from '../../media/video/image.inputs';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';
import { KeyframeTrack } from './keyframe.track';

type Tf = typeof TfCore;

/** A layer never needs more pixels than this on its long side ... */
const MAX_LAYER_SIDE = 4096;
/** ... and all layers together stay within this many decoded pixels (16 bytes each as tensors). */
const LAYER_PIXEL_BUDGET = 32_000_000;

// Progress milestones: frames fill RENDER_FROM .. RENDER_TO, the mux ends at ENCODED.
const LOADED = 0.15;
const RENDER_FROM = 0.2;
const RENDER_TO = 0.9;
const ENCODED = 0.94;

interface Layer {
  /** [1, h, w, 4]: rgb premultiplied by alpha and scaled to 0..255, alpha 0..1. */
  image: TfCore.Tensor4D;
  track: KeyframeTrack;
  /** Native pixels per decoded pixel: keyframe scales refer to the native size. */
  scale: number;
}

/**
 * Keyframed layer animations: each layer's keyframes are interpolated with its easing, and the
 * layer is warped by an affine transform per frame (tf.image.transform) and composited over the
 * background with premultiplied alpha, in batches of frames that stream into ffmpeg.
 */
@TaskProcessorFor('render_animation')
export class RenderAnimationProcessor implements TaskProcessor<RenderAnimationTaskData> {
  private readonly logger = new Logger(RenderAnimationProcessor.name);

  constructor(
    private readonly gpu: GpuService,
    private readonly inputs: InputFetcher,
  ) {}

  async process(task: RunningTask<RenderAnimationTaskData>): Promise<TaskOutput> {
    const data = task.data;
    const { width, height } = parseResolution(data.resolution);
    const { fps, frames, duration } = videoTiming(data.duration, data.fps);
    const background = data.background ?? '#000000';
    const backgroundColour = HEX_COLOUR.test(background) ? hexToRgb(background) : undefined;
    const tag = `task_id=${task.taskId} project_id=${task.projectId}`;
    task.signal.throwIfAborted();
    const started = Date.now();

    await task.progress(0.01, 'fetching_layers');
    await this.gpu.init();
    const tf = this.gpu.tf;
    const output = path.join(
      os.tmpdir(),
      `ams-animation-${task.taskId}-${randomBytes(4).toString('hex')}.mp4`,
    );

    const render = this.gpu.scoped(`render_animation ${tag}`, async (scope) => {
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
      const tracks = data.layers.map(
        (l) => new KeyframeTrack(l.keyframes, l.easing ?? 'linear', start),
      );
      const layers = await loadLayers(tf, scope, images.slice(0, tracks.length), tracks, {
        width,
        height,
      });
      const backdrop = scope.keep(
        backgroundColour
          ? solidFrame(tf, backgroundColour, width, height)
          : await loadBackground(tf, images[tracks.length], width, height),
      );
      task.signal.throwIfAborted();
      await task.progress(RENDER_FROM, 'rendering_animation');

      const encoder = FfmpegEncoder.start({ width, height, fps, output, signal: task.signal });
      const batch = framesPerBatch(width, height);
      let bytes: Uint8Array | undefined;
      let composited = 0;
      // Where the time goes (logged): tensor work incl. readback, waiting for ffmpeg.
      let renderMs = 0;
      let encodeWaitMs = 0;
      try {
        for (let first = 0; first < frames; first += batch) {
          task.signal.throwIfAborted();
          const t0 = Date.now();
          const count = Math.min(batch, frames - first);
          const times = Array.from({ length: count }, (_, k) => (first + k) / fps);
          // The background in every frame: broadcasting over the batch is a plain copy (tile is
          // ~100× slower on wasm).
          let canvas = scope.tidy(() =>
            tf.add<TfCore.Tensor4D>(backdrop, tf.zeros([count, 1, 1, 1])),
          );
          try {
            for (const layer of layers) {
              const placements = times.map((t) => {
                const p = layer.track.at(t);
                return { ...p, scale: p.scale * layer.scale };
              });
              const [, h, w] = layer.image.shape;
              if (!layerRegion(placements, w, h, { width, height })) continue;
              const next = scope.tidy(() => compositeLayer(tf, canvas, layer.image, placements));
              canvas.dispose();
              canvas = next;
              composited += count;
            }
            if (!bytes || bytes.length < canvas.size) bytes = new Uint8Array(canvas.size);
            const frameBytes = toRgb24(tf, canvas, bytes);
            const t1 = Date.now();
            renderMs += t1 - t0;
            await encoder.write(frameBytes);
            encodeWaitMs += Date.now() - t1;
          } finally {
            canvas.dispose();
          }
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
      return { composited, renderMs, encodeWaitMs };
    });
    let stats: Awaited<typeof render>;
    try {
      stats = await render;
    } catch (err) {
      await rm(output, { force: true });
      throw err;
    }
    await task.progress(ENCODED, 'rendering_animation');

    const elapsed = Date.now() - started;
    this.logger.log(
      `${tag}: ${frames} frames ${width}x${height}@${fps} (${duration.toFixed(2)} s), ` +
        `${data.layers.length} layer(s) (${stats.composited} layer-frames drawn) in ${elapsed} ms ` +
        `on ${this.gpu.backendName} (frames ${stats.renderMs} ms, waiting for ffmpeg ` +
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
        backend: this.gpu.backendName,
        layers: data.layers.length,
        background: backgroundColour ? background.toLowerCase() : 'image',
        render_ms: elapsed,
      },
    };
  }
}

/**
 * Decodes each layer no larger than it is ever shown (its largest keyframe scale, at most twice
 * the canvas and MAX_LAYER_SIDE, all layers within LAYER_PIXEL_BUDGET) and keeps it as a
 * premultiplied tensor.
 */
async function loadLayers(
  tf: Tf,
  scope: TensorScope,
  images: readonly ImageInput[],
  tracks: readonly KeyframeTrack[],
  canvas: { width: number; height: number },
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
    const image = scope.keep(
      scope.tidy(() => {
        const values = tf.tensor4d(new Float32Array(rgba.data), [1, h, w, 4]);
        const [rgb, alpha] = tf.split(tf.div(values, 255), [3, 1], 3);
        return tf.concat([tf.mul(rgb, tf.mul(alpha, 255)), alpha], 3) as TfCore.Tensor4D;
      }),
    );
    layers.push({ image, track: tracks[i], scale: img.width / w });
  }
  return layers;
}

async function loadBackground(
  tf: Tf,
  image: ImageInput,
  width: number,
  height: number,
): Promise<TfCore.Tensor4D> {
  const rgb = await decodeCover(image, width, height);
  return tf.tensor4d(new Float32Array(rgb.data), [1, height, width, 3]);
}

/** A frame of one colour, [1, height, width, 3] in byte units. */
function solidFrame(
  tf: Tf,
  rgb: [number, number, number],
  width: number,
  height: number,
): TfCore.Tensor4D {
  return tf.tidy(() =>
    tf.mul<TfCore.Tensor4D>(tf.ones([1, height, width, 1]), tf.tensor4d(rgb, [1, 1, 1, 3])),
  );
}

/** `#123` or `#112233` → byte values. */
function hexToRgb(hex: string): [number, number, number] {
  const digits = hex.slice(1);
  const full = digits.length === 3 ? [...digits].map((d) => d + d).join('') : digits;
  return [0, 2, 4].map((i) => parseInt(full.slice(i, i + 2), 16)) as [number, number, number];
}
