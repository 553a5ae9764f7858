import type * as TfCore from '@tensorflow/tfjs-core';
import { colourMatrix, type SceneGrade } from './scene.lighting';

/*
 * The grade and the screen light as tfjs tensor ops: what the video processor computed before its
 * plain loops (`gradeBytes`, `screenGains`), kept as the reference those are checked against, and
 * where the look of each preset is tested. Used by specs only.
 */

type Tf = typeof TfCore;

/**
 * `fn(x)`, then frees `x`. Chains of batch-sized ops keep two tensors alive this way, where a
 * plain tidy keeps every intermediate until it ends (and the wasm heap never shrinks again).
 */
export function consume<T extends TfCore.Tensor>(x: TfCore.Tensor, fn: (x: TfCore.Tensor) => T): T {
  const y = fn(x);
  x.dispose();
  return y;
}

/**
 * Frames in byte range (0..255 floats, [N, H, W, 3]) as rgb24 bytes for ffmpeg, written into
 * `target` when given (it must hold them). Rounding, clipping and the cast to integers run as
 * tensor ops; int32 → uint8 is then a fast native copy. (Measured per 1080p frame on wasm:
 * ~17 ms this way, ~41 ms for dataSync plus a float → Uint8ClampedArray conversion.)
 */
export function toRgb24(tf: Tf, frames: TfCore.Tensor, target?: Uint8Array): Uint8Array {
  const size = frames.size;
  const out = target && target.length >= size ? target.subarray(0, size) : new Uint8Array(size);
  const ints = tf.tidy(() =>
    consume(
      consume(tf.add(frames, 0.5), (x) => tf.clipByValue(x, 0, 255)),
      (x) => tf.cast(x, 'int32'),
    ),
  );
  try {
    out.set(int32View(tf, ints));
  } finally {
    ints.dispose();
  }
  return out;
}

/**
 * The values of an int32 tensor. On wasm, a view straight into the module's heap: dataSync would
 * first copy the frames (~14 ms per 1080p frame). The view is used at once, before any other op
 * can grow (and so move) the heap.
 */
function int32View(tf: Tf, tensor: TfCore.Tensor): Int32Array {
  const backend = tf.backend() as {
    wasm?: { HEAPU8?: Uint8Array };
    dataIdMap?: { get(id: object): { memoryOffset?: number } | undefined };
  };
  const heap = backend.wasm?.HEAPU8;
  const offset = backend.dataIdMap?.get(tensor.dataId)?.memoryOffset;
  if (tf.getBackend() === 'wasm' && heap && typeof offset === 'number') {
    return new Int32Array(heap.buffer, heap.byteOffset + offset, tensor.size);
  }
  return tensor.dataSync() as Int32Array;
}

/**
 * Grades decoded frames `rgb` ([N, H, W, 3], values times `scale` give 0..1, e.g. 1/255 for
 * bytes): colour matrix, lift and contrast curve. Returns 0..1. Intermediates are freed as it
 * goes (a 1.5× 1080p source is 56 MB per tensor). Call inside tidy.
 */
export function gradeColours(
  tf: Tf,
  grade: SceneGrade,
  rgb: TfCore.Tensor4D,
  scale = 1,
): TfCore.Tensor4D {
  const shape = rgb.shape;
  // Pixels as rows: [P, 3] · Mᵀ applies M to each pixel (the input scale folded in).
  const matrix = tf.mul(tf.transpose(tf.tensor2d(colourMatrix(grade), [3, 3])), scale);
  let out: TfCore.Tensor = tf.matMul(tf.reshape(rgb, [-1, 3]), matrix);
  if (grade.lift !== 0) {
    out = consume(
      consume(out, (x) => tf.mul(x, 1 - grade.lift)),
      (x) => tf.add(x, grade.lift),
    );
  }
  out = consume(out, (x) => tf.clipByValue(x, 0, 1));
  if (grade.contrast !== 0) {
    // Blend towards smoothstep: an S-curve around mid grey (negative: flatter).
    // c + k·(3c² − 2c³ − c) = c·(1 − k + c·(3k − 2k·c))
    const k = grade.contrast;
    const c = out;
    const inner = consume(
      consume(tf.mul(c, -2 * k), (x) => tf.add(x, 3 * k)),
      (x) => tf.mul(x, c),
    );
    const factor = consume(inner, (x) => tf.add(x, 1 - k));
    out = consume(c, (x) => tf.mul(x, factor));
    factor.dispose();
  }
  return consume(out, (x) => tf.reshape<TfCore.Rank.R4>(x, shape));
}

/**
 * The screen-space light of a frame: ambient plus the coloured key light (through blinds for
 * noir), normalised to an average of 1 so that exposure stays the colour grade's business, times
 * the vignette, times `scale` (255 turns 0..1 frames into byte values in the same multiply).
 * Returns [1, height, width, 3]. Call inside tidy.
 */
export function screenLight(
  tf: Tf,
  grade: SceneGrade,
  width: number,
  height: number,
  scale = 1,
): TfCore.Tensor4D {
  // Frame coordinates in -1..1 at pixel centres.
  const xs = tf.reshape(tf.linspace(-1 + 1 / width, 1 - 1 / width, width), [1, 1, width, 1]);
  const ys = tf.reshape(tf.linspace(-1 + 1 / height, 1 - 1 / height, height), [1, height, 1, 1]);
  const { key } = grade;
  const len = Math.hypot(key.dir[0], key.dir[1]) || 1;
  // Brighter towards where the light comes from: a sigmoid ramp across the frame.
  let field: TfCore.Tensor = tf.sigmoid(
    tf.mul(tf.add(tf.mul(xs, key.dir[0] / len), tf.mul(ys, key.dir[1] / len)), key.hardness),
  );
  if (grade.blinds) {
    const { angle, period, depth } = grade.blinds;
    const phase = tf.mul(
      tf.add(tf.mul(xs, Math.cos(angle)), tf.mul(ys, Math.sin(angle))),
      1 / period,
    );
    const slat = tf.sigmoid(tf.mul(tf.sub(tf.abs(tf.sub(phase, tf.round(phase))), 0.25), 40));
    field = tf.mul(field, tf.sub(1, tf.mul(slat, depth)));
  }
  const colour = tf.tensor4d([...key.colour], [1, 1, 1, 3]);
  let light: TfCore.Tensor = tf.add(grade.ambient, tf.mul(tf.mul(field, key.strength), colour));
  light = tf.div(light, tf.mean(light));
  if (grade.vignette !== 0) {
    const r2 = tf.add(tf.square(xs), tf.square(ys));
    light = tf.mul(light, tf.clipByValue(tf.sub(1, tf.mul(r2, grade.vignette * 0.45)), 0, 1));
  }
  return tf.mul<TfCore.Tensor4D>(light, scale);
}
