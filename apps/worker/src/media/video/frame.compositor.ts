import type * as TfCore from '@tensorflow/tfjs-core';

type Tf = typeof TfCore;
type T4 = TfCore.Tensor4D;

/**
 * Output pixels computed per batch: two 1080p frames (50 MB per float32 batch tensor). Measured on
 * wasm: as fast as batches of four (per-op overhead is nothing at this size) with half the heap
 * (~0.5 GB peak for a default video instead of ~0.9 GB), and a batch takes ~0.2 s, so a cancel is
 * seen quickly.
 */
const BATCH_PIXELS = 2 * 1920 * 1080;
const MAX_BATCH_FRAMES = 12;

export function framesPerBatch(width: number, height: number): number {
  return Math.max(1, Math.min(MAX_BATCH_FRAMES, Math.floor(BATCH_PIXELS / (width * height))));
}

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

/** Where a layer is in one frame: its centre in output pixels, scale, rotation (deg), opacity. */
export interface LayerPlacement {
  x: number;
  y: number;
  scale: number;
  rotation: number;
  opacity: number;
}

/** Integer pixel rectangle [x0, y0) .. [x1, y1) of the output. */
export interface PixelRegion {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * The part of the canvas a layer (`w`×`h`) touches in any of the placements, plus a pixel for
 * the bilinear edge, clipped to the canvas; undefined when it is off-canvas or invisible.
 */
export function layerRegion(
  placements: readonly LayerPlacement[],
  w: number,
  h: number,
  canvas: { width: number; height: number },
): PixelRegion | undefined {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (const p of placements) {
    if (p.opacity <= 0 || p.scale <= 0) continue;
    const rad = (p.rotation * Math.PI) / 180;
    const cos = Math.abs(Math.cos(rad));
    const sin = Math.abs(Math.sin(rad));
    const halfW = ((w * cos + h * sin) * p.scale) / 2;
    const halfH = ((w * sin + h * cos) * p.scale) / 2;
    x0 = Math.min(x0, p.x - halfW);
    x1 = Math.max(x1, p.x + halfW);
    y0 = Math.min(y0, p.y - halfH);
    y1 = Math.max(y1, p.y + halfH);
  }
  const region = {
    x0: Math.max(0, Math.floor(x0) - 1),
    y0: Math.max(0, Math.floor(y0) - 1),
    x1: Math.min(canvas.width, Math.ceil(x1) + 1),
    y1: Math.min(canvas.height, Math.ceil(y1) + 1),
  };
  return region.x1 > region.x0 && region.y1 > region.y0 ? region : undefined;
}

/**
 * The projective matrix `tf.image.transform` wants for one placement: it maps a pixel of the
 * region's output to the layer pixel sampled there — the inverse of scale, then rotate, then move
 * the layer's centre to (x, y). Pixel centres sit at +0.5 on both grids.
 */
export function layerTransform(
  p: LayerPlacement,
  w: number,
  h: number,
  region: PixelRegion,
): number[] {
  const rad = (p.rotation * Math.PI) / 180;
  const cos = Math.cos(rad);
  const sin = Math.sin(rad);
  const s = Math.max(p.scale, 1e-6);
  // Canvas point (ox + x0 + 0.5, oy + y0 + 0.5) relative to the layer's centre ...
  const dx = region.x0 + 0.5 - p.x;
  const dy = region.y0 + 0.5 - p.y;
  // ... rotated back and unscaled, in layer pixels from its top-left pixel centre.
  return [
    cos / s,
    sin / s,
    (cos * dx + sin * dy) / s + w / 2 - 0.5,
    -sin / s,
    cos / s,
    (-sin * dx + cos * dy) / s + h / 2 - 0.5,
    0,
    0,
  ];
}

/** Picks rgb (rows 0–2) and alpha (row 3, repeated) out of rgba pixels by a matrix product. */
const RGB_OF_RGBA = [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0];
const ALPHA3_OF_RGBA = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1];

/**
 * Composites a layer into a batch of frames ("over", premultiplied alpha): the layer's image
 * ([1, h, w, 4], rgb premultiplied in the canvas's units, alpha 0..1) is warped by an affine
 * transform per frame into the region it can touch and faded by opacity; then
 * `canvas · (1 − α) + rgb`. `canvas` is [N, H, W, 3]; returns the new canvas. Only the region is
 * warped: a small layer costs little on a 4K frame.
 *
 * Written for the wasm backend's fast paths (measured per 1080p frame): channels are separated by
 * a matrix product (slicing the last axis copies pixel by pixel, ~19 ms), and the region is
 * placed into a full frame by concatenating it with filled blocks (~3 ms; pad takes ~25 ms and
 * any slice of the canvas first copies the whole batch). Call inside tidy.
 */
export function compositeLayer(
  tf: Tf,
  canvas: T4,
  layer: T4,
  placements: readonly LayerPlacement[],
): T4 {
  const [n, height, width] = canvas.shape;
  const [, h, w] = layer.shape;
  const region = layerRegion(placements, w, h, { width, height });
  if (!region) return tf.clone(canvas);
  const rw = region.x1 - region.x0;
  const rh = region.y1 - region.y0;
  const transforms = tf.tensor2d(
    placements.map((p) => layerTransform(p, w, h, region)),
    [n, 8],
  );
  const opacity = tf.tensor4d(
    placements.map((p) => (p.scale > 0 ? p.opacity : 0)),
    [n, 1, 1, 1],
  );
  const pixels = tf.reshape(
    consume(warp(tf, layer, transforms, n, [rh, rw]), (x) => tf.mul(x, opacity)),
    [-1, 4],
  );
  const shape: [number, number, number, number] = [n, rh, rw, 3];
  const rgb = tf.reshape<TfCore.Rank.R4>(
    tf.matMul(pixels, tf.tensor2d(RGB_OF_RGBA, [4, 3])),
    shape,
  );
  const alpha = tf.reshape(tf.matMul(pixels, tf.tensor2d(ALPHA3_OF_RGBA, [4, 3])), shape);
  const size = { width, height };
  const over = placeRegion(tf, rgb, region, size, 0);
  const keep = placeRegion(tf, tf.sub<T4>(1, alpha), region, size, 1);
  const under = consume(keep, (k) => tf.mul(canvas, k));
  const out = consume(under, (u) => tf.add(over, u));
  over.dispose();
  return out as T4;
}

/** `values` ([N, rh, rw, C]) at `region` of a full frame filled with `fill` elsewhere. */
function placeRegion(
  tf: Tf,
  values: T4,
  region: PixelRegion,
  canvas: { width: number; height: number },
  fill: number,
): T4 {
  const [n, rh, rw, c] = values.shape;
  const { width, height } = canvas;
  if (rw === width && rh === height) return values;
  // Rows as runs of width·C values: concatenation then copies whole runs.
  const runs = tf.reshape(values, [n, rh, rw * c]);
  const joined = (parts: TfCore.Tensor[], axis: number) => {
    const out = tf.concat(parts, axis);
    parts.forEach((p) => p.dispose());
    return out;
  };
  const band =
    rw === width
      ? runs
      : joined(
          [
            ...(region.x0 > 0 ? [tf.fill([n, rh, region.x0 * c], fill)] : []),
            runs,
            ...(region.x1 < width ? [tf.fill([n, rh, (width - region.x1) * c], fill)] : []),
          ],
          2,
        );
  const frame =
    rh === height
      ? band
      : joined(
          [
            ...(region.y0 > 0 ? [tf.fill([n, region.y0, width * c], fill)] : []),
            band,
            ...(region.y1 < height ? [tf.fill([n, height - region.y1, width * c], fill)] : []),
          ],
          1,
        );
  return tf.reshape(frame, [n, height, width, c]);
}

/** The layer warped once per frame: [n, ...outputShape, 4]. */
function warp(
  tf: Tf,
  layer: T4,
  transforms: TfCore.Tensor2D,
  n: number,
  outputShape: [number, number],
): T4 {
  if (n === 1) return tf.image.transform(layer, transforms, 'bilinear', 'constant', 0, outputShape);
  // tfjs-backend-cpu 4.22's Transform returns after the first image of a batch (the others stay
  // fill value); wasm and tensorflow do the whole batch. On cpu, warp frame by frame.
  if (tf.getBackend() === 'cpu') {
    const frames = tf
      .unstack(transforms)
      .map((t) =>
        tf.image.transform(layer, tf.reshape(t, [1, 8]), 'bilinear', 'constant', 0, outputShape),
      );
    return tf.concat(frames, 0);
  }
  // Concatenation copies the layer n times; tile does the same ~50× slower on wasm.
  const images = tf.concat(new Array<T4>(n).fill(layer), 0);
  return tf.image.transform(images, transforms, 'bilinear', 'constant', 0, outputShape);
}
