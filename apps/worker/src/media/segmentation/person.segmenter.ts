import { Injectable } from '@nestjs/common';
import sharp from 'sharp';
import type * as TfCore from '@tensorflow/tfjs-core';
import { GpuService, ModelRepository, type LoadedModel } from '@app/gpu';
import type { SegmentationQuality } from '@app/tasks';

/** The model-repository network behind each quality. */
export const PERSON_SEGMENTATION_MODELS = {
  fast: 'person-segmentation-selfie',
  best: 'person-segmentation-rvm',
} as const satisfies Record<SegmentationQuality, string>;

/** RVM runs on at most this many pixels on the long side; its matte is scaled up from there. */
export const RVM_MAX_SIDE = 1024;
/**
 * Long side the RVM base network sees (`downsample_ratio` = this / working long side); its deep
 * guided filter refines the matte back at the working size. RVM's authors advise 256–512; on our
 * figure tests 288 was the steadiest (256 and 384 left translucent torsos on some poses).
 */
export const RVM_BASE_SIDE = 288;
/** RVM's encoder downsamples 16×: smaller sides are scaled up to this. */
const RVM_MIN_SIDE = 64;
/** Fully transparent pixels are flattened onto this before the network sees them. */
const FLATTEN_GREY = { r: 128, g: 128, b: 128 };

/** Raw pixels, row-major, 3 (RGB) or 4 (RGBA) channels of 8 bits. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 3 | 4;
}

export interface PersonMatte {
  /** One byte per pixel of the input, 0 (background) .. 255 (person). */
  alpha: Uint8Array;
  width: number;
  height: number;
  model: string;
  version: string;
  backend: string;
  /** What the network saw, `WxH`. */
  networkResolution: string;
  /** Share of pixels whose alpha is above one half. */
  foregroundFraction: number;
  inferenceMs: number;
}

/**
 * Cuts people out of images with the bundled segmentation networks, run as tfjs graphs of the
 * ModelRepository with our own pre- and post-processing (not through @vladmandic/human, whose
 * RVM keeps recurrent state in a module global: a still image would inherit the previous image's
 * state, and an image of another size fails). The network sees a scaled copy (sharp); its mask is
 * scaled back to the input's full size with a smooth kernel (sharp, off the event loop).
 */
@Injectable()
export class PersonSegmenter {
  constructor(
    private readonly gpu: GpuService,
    private readonly models: ModelRepository,
  ) {}

  /** The tfjs backend the networks run on. */
  get backend(): string {
    return this.gpu.backendName;
  }

  /**
   * The person matte of `image`, at the image's size or at `output` (a layer shown smaller than
   * the picture it is segmented from).
   */
  async segment(
    image: RawImage,
    quality: SegmentationQuality,
    signal?: AbortSignal,
    output: Size = image,
  ): Promise<PersonMatte> {
    await this.gpu.init();
    signal?.throwIfAborted();
    const name = PERSON_SEGMENTATION_MODELS[quality];
    return this.models.use(name, async (model) => {
      const size = quality === 'fast' ? selfieSize(model) : rvmSize(image.width, image.height);
      const pixels = await networkInput(image, size.width, size.height);
      signal?.throwIfAborted();
      const started = performance.now();
      const small = await this.gpu.scoped(`segmentation ${name}`, () =>
        quality === 'fast' ? this.runSelfie(model, pixels, size) : this.runRvm(model, pixels, size),
      );
      const inferenceMs = performance.now() - started;
      signal?.throwIfAborted();
      const alpha = await resizeMask(small, size, output.width, output.height);
      return {
        alpha,
        width: output.width,
        height: output.height,
        model: name,
        version: model.version,
        backend: this.gpu.backendName,
        networkResolution: `${size.width}x${size.height}`,
        foregroundFraction: foregroundFraction(alpha),
        inferenceMs,
      };
    });
  }

  /** MediaPipe Selfie: [1,256,256,3] in 0–1 → [1,256,256,1] in 0–1. */
  private runSelfie(model: LoadedModel, pixels: Buffer, size: Size): Promise<Uint8Array> {
    const tf = this.gpu.tf;
    return model.infer(async () => {
      const mask = tf.tidy(() => {
        const input = toInput(tf, pixels, size);
        return toBytes(tf, model.graph().execute(input) as TfCore.Tensor);
      });
      try {
        return Uint8Array.from(await mask.data());
      } finally {
        mask.dispose();
      }
    });
  }

  /**
   * Robust Video Matting on one still image: zero recurrent states ([1,1,1,1] broadcasts), the
   * alpha output `pha` at the input's size.
   */
  private runRvm(model: LoadedModel, pixels: Buffer, size: Size): Promise<Uint8Array> {
    const tf = this.gpu.tf;
    return model.infer(async () => {
      const zero = tf.zeros([1, 1, 1, 1]);
      const ratio = tf.scalar(Math.min(1, RVM_BASE_SIDE / Math.max(size.width, size.height)));
      const src = toInput(tf, pixels, size);
      let outputs: TfCore.Tensor[] = [];
      try {
        const out = await model
          .graph()
          .executeAsync(
            { src, r1i: zero, r2i: zero, r3i: zero, r4i: zero, downsample_ratio: ratio },
            ['pha'],
          );
        outputs = Array.isArray(out) ? out : [out];
        const mask = toBytes(tf, outputs[0]);
        try {
          return Uint8Array.from(await mask.data());
        } finally {
          mask.dispose();
        }
      } finally {
        tf.dispose([zero, ratio, src, ...outputs]);
      }
    });
  }
}

export interface Size {
  width: number;
  height: number;
}

/** The fixed input size of the selfie graph (its config's first input), 256×256. */
function selfieSize(model: LoadedModel): Size {
  const [, h, w] = model.config.inputs[0]?.shape ?? [];
  return { width: w ?? 256, height: h ?? 256 };
}

/** The input scaled to RVM_MAX_SIDE on its long side when larger, never below RVM_MIN_SIDE. */
function rvmSize(width: number, height: number): Size {
  const scale = Math.min(1, RVM_MAX_SIDE / Math.max(width, height));
  return {
    width: Math.max(RVM_MIN_SIDE, Math.round(width * scale)),
    height: Math.max(RVM_MIN_SIDE, Math.round(height * scale)),
  };
}

/** RGB bytes at the network's size; transparent pixels flattened onto grey. */
async function networkInput(image: RawImage, width: number, height: number): Promise<Buffer> {
  let pipeline = sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: image.channels },
  });
  if (image.channels === 4) pipeline = pipeline.flatten({ background: FLATTEN_GREY });
  return pipeline.resize(width, height, { fit: 'fill' }).raw().toBuffer();
}

/** [1, h, w, 3] float in 0–1 from RGB bytes. */
function toInput(tf: typeof TfCore, pixels: Buffer, size: Size): TfCore.Tensor4D {
  return tf.tidy(() =>
    tf.div<TfCore.Tensor4D>(
      tf.tensor4d(new Int32Array(pixels), [1, size.height, size.width, 3], 'int32'),
      255,
    ),
  );
}

/** A [1, h, w, 1] mask in 0–1 as rounded bytes ([h*w] int32 0–255). */
function toBytes(tf: typeof TfCore, mask: TfCore.Tensor): TfCore.Tensor {
  return tf.tidy(() =>
    tf.cast(tf.round(tf.mul(tf.clipByValue(tf.reshape(mask, [-1]), 0, 1), 255)), 'int32'),
  );
}

/** The network's mask scaled to the output size (Mitchell: smooth, next to no ringing). */
async function resizeMask(
  mask: Uint8Array,
  size: Size,
  width: number,
  height: number,
): Promise<Uint8Array> {
  if (size.width === width && size.height === height) return mask;
  const out = await sharp(mask, { raw: { width: size.width, height: size.height, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'mitchell' })
    // One channel out (sharp would otherwise expand grey to sRGB).
    .toColourspace('b-w')
    .raw()
    .toBuffer();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function foregroundFraction(alpha: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < alpha.length; i++) if (alpha[i] > 127) n++;
  return alpha.length === 0 ? 0 : n / alpha.length;
}

/**
 * Multiplies the RGBA pixels' alpha by the matte in place (the cut-out is never more opaque than
 * the input) and returns the share of pixels left above one half.
 */
export function applyMatte(rgba: Uint8Array, matte: Uint8Array): number {
  let foreground = 0;
  for (let i = 0, p = 3; i < matte.length; i++, p += 4) {
    const a = Math.round((rgba[p] * matte[i]) / 255);
    rgba[p] = a;
    if (a > 127) foreground++;
  }
  return matte.length === 0 ? 0 : foreground / matte.length;
}
