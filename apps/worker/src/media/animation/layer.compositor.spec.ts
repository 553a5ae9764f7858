import * as tf from '@tensorflow/tfjs-core';
import { selectTfjsBackend } from '@app/gpu/tfjs-backend.selection';
import { toRgb24 } from '../video/scene.reference';
import {
  animationFramesPerBatch,
  compositeFrame,
  layerRegion,
  layerTransform,
  premultiplied,
  type LayerDraw,
  type LayerPlacement,
  type PremultipliedLayer,
} from './layer.compositor';

const W = 100;
const H = 60;

/** A deterministic pseudo-random byte sequence. */
function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

/** A `w`×`h` rgba layer of random colours; alpha random, or `alpha` everywhere. */
function randomLayer(w: number, h: number, seed: number, alpha?: number): PremultipliedLayer {
  const rgba = bytes(w * h * 4, seed);
  if (alpha !== undefined) for (let i = 3; i < rgba.length; i += 4) rgba[i] = alpha;
  return premultiplied(rgba, w, h);
}

/** A 20×10 opaque red layer. */
function redLayer(): PremultipliedLayer {
  const rgba = new Uint8Array(20 * 10 * 4);
  for (let i = 0; i < rgba.length; i += 4) [rgba[i], rgba[i + 3]] = [255, 255];
  return premultiplied(rgba, 20, 10);
}

function solid(value: number, width = W, height = H): Uint8Array {
  return new Uint8Array(width * height * 3).fill(value);
}

function frame(backdrop: Uint8Array, draws: LayerDraw[], width = W, height = H): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  compositeFrame(out, 0, width, height, backdrop, draws);
  return out;
}

function pixel(frameBytes: Uint8Array, x: number, y: number, width = W): number[] {
  const i = (y * width + x) * 3;
  return Array.from(frameBytes.subarray(i, i + 3));
}

/**
 * The tfjs path this compositor replaced, one frame at a time: each layer as a [1, h, w, 4]
 * tensor warped by tf.image.transform (bilinear, constant 0) into its region with the same
 * matrix, times the opacity, placed into the frame, then `canvas · (1 − α) + rgb`, and the
 * frame rounded by `toRgb24`. (The old code reached the same values through faster tensor ops.)
 */
function tfjsFrame(backdrop: Uint8Array, draws: LayerDraw[], width = W, height = H): Uint8Array {
  const canvasSize = { width, height };
  const result = tf.tidy(() => {
    let canvas = tf.tensor4d(Float32Array.from(backdrop), [1, height, width, 3]);
    for (const { layer, placement } of draws) {
      const { width: w, height: h } = layer;
      const region = layerRegion([placement], w, h, canvasSize);
      if (!region) continue;
      const image = tf.tensor4d(layer.data, [1, h, w, 4]);
      const matrix = tf.tensor2d([layerTransform(placement, w, h, region)], [1, 8]);
      const size: [number, number] = [region.y1 - region.y0, region.x1 - region.x0];
      const warped = tf.mul(
        tf.image.transform(image, matrix, 'bilinear', 'constant', 0, size),
        placement.opacity,
      );
      const placed = tf.pad(warped, [
        [0, 0],
        [region.y0, height - region.y1],
        [region.x0, width - region.x1],
        [0, 0],
      ]);
      const [rgb, alpha] = tf.split(placed, [3, 1], 3);
      canvas = tf.add(tf.mul(canvas, tf.sub(1, alpha)), rgb);
    }
    return canvas;
  });
  try {
    return toRgb24(tf, result);
  } finally {
    result.dispose();
  }
}

function maxDifference(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const at = (x: number, y: number, more: Partial<LayerPlacement> = {}): LayerPlacement => ({
  x,
  y,
  scale: 1,
  rotation: 0,
  opacity: 1,
  ...more,
});

describe('layer compositor', () => {
  it('sizes batches to about four 1080p frames', () => {
    expect(animationFramesPerBatch(1920, 1080)).toBe(4);
    expect(animationFramesPerBatch(3840, 2160)).toBe(1);
    expect(animationFramesPerBatch(320, 180)).toBe(12);
  });

  it('premultiplies rgb by alpha, in byte units', () => {
    const layer = premultiplied(new Uint8Array([200, 100, 50, 51, 10, 20, 30, 0]), 2, 1);
    expect(Array.from(layer.data)).toEqual([
      Math.fround(40),
      Math.fround(20),
      Math.fround(10),
      Math.fround(0.2),
      0,
      0,
      0,
      0,
    ]);
  });

  it('places, rotates and fades a layer with an affine transform', () => {
    const black = solid(0);
    // Upright: 20 wide, 10 tall around (50, 30).
    const upright = frame(black, [{ layer: redLayer(), placement: at(50, 30) }]);
    expect(pixel(upright, 50, 30)).toEqual([255, 0, 0]);
    expect(pixel(upright, 42, 30)).toEqual([255, 0, 0]);
    expect(pixel(upright, 50, 38)).toEqual([0, 0, 0]);
    // Turned a quarter: 10 wide, 20 tall.
    const turned = frame(black, [{ layer: redLayer(), placement: at(50, 30, { rotation: 90 }) }]);
    expect(pixel(turned, 50, 38)).toEqual([255, 0, 0]);
    expect(pixel(turned, 58, 30)).toEqual([0, 0, 0]);
    // Twice the size, half opacity, around (20, 20): 40 × 20.
    const faded = frame(black, [
      { layer: redLayer(), placement: at(20, 20, { scale: 2, opacity: 0.5 }) },
    ]);
    expect(pixel(faded, 2, 20)).toEqual([128, 0, 0]);
    expect(pixel(faded, 20, 28)).toEqual([128, 0, 0]);
    expect(pixel(faded, 20, 33)).toEqual([0, 0, 0]);
  });

  it('blends over what is below and leaves the rest untouched', () => {
    const out = frame(solid(100), [
      { layer: redLayer(), placement: at(90, 55, { opacity: 0.25 }) },
    ]);
    expect(pixel(out, 95, 58)).toEqual([139, 75, 75]);
    expect(pixel(out, 10, 10)).toEqual([100, 100, 100]);
  });

  it('copies an opaque layer exactly when placed at whole pixels, unscaled and upright', () => {
    const backdrop = bytes(W * H * 3, 7);
    const rgba = bytes(16 * 12 * 4, 11);
    for (let i = 3; i < rgba.length; i += 4) rgba[i] = 255;
    // Centre (30, 20) of a 16×12 layer: its top-left pixel lands on (22, 14).
    const out = frame(backdrop, [{ layer: premultiplied(rgba, 16, 12), placement: at(30, 20) }]);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inside = x >= 22 && x < 38 && y >= 14 && y < 26;
        const i = ((y - 14) * 16 + (x - 22)) * 4;
        const expected = inside ? Array.from(rgba.subarray(i, i + 3)) : pixel(backdrop, x, y);
        expect(pixel(out, x, y)).toEqual(expected);
      }
    }
  });

  it('leaves the backdrop as it is for invisible, transparent and off-canvas layers', () => {
    const backdrop = bytes(W * H * 3, 3);
    const layer = randomLayer(20, 10, 5);
    const out = frame(backdrop, [
      { layer, placement: at(50, 30, { opacity: 0 }) },
      { layer, placement: at(50, 30, { scale: 0 }) },
      { layer, placement: at(500, 30) },
      { layer, placement: at(50, -40, { rotation: 45 }) },
      { layer: randomLayer(20, 10, 6, 0), placement: at(33.3, 21.7, { rotation: 17 }) },
    ]);
    expect(Buffer.from(out).equals(Buffer.from(backdrop))).toBe(true);
  });

  it('writes frames into a batch at their offsets', () => {
    const backdrop = bytes(W * H * 3, 9);
    const draws = [{ layer: randomLayer(20, 10, 1), placement: at(40.3, 25.6, { rotation: 30 }) }];
    const batch = new Uint8Array(3 * W * H * 3).fill(77);
    compositeFrame(batch, W * H * 3, W, H, backdrop, draws);
    expect(batch.subarray(0, W * H * 3).every((v) => v === 77)).toBe(true);
    expect(Buffer.from(batch.subarray(W * H * 3, 2 * W * H * 3))).toEqual(
      Buffer.from(frame(backdrop, draws)),
    );
    expect(batch.subarray(2 * W * H * 3).every((v) => v === 77)).toBe(true);
    expect(() => compositeFrame(batch, 3 * W * H * 3, W, H, backdrop, draws)).toThrow(RangeError);
  });

  it('knows when a layer is off the canvas or invisible', () => {
    const canvas = { width: W, height: H };
    expect(layerRegion([at(500, 30)], 20, 10, canvas)).toBeUndefined();
    expect(layerRegion([at(50, 30, { opacity: 0 })], 20, 10, canvas)).toBeUndefined();
    expect(layerRegion([at(50, 30)], 20, 10, canvas)).toEqual({ x0: 39, y0: 24, x1: 61, y1: 36 });
  });
});

describe.each(['wasm', 'cpu'] as const)('layer compositor against the tfjs path on %s', (b) => {
  beforeAll(async () => {
    await selectTfjsBackend(b);
  });

  const layerA = randomLayer(23, 17, 21);
  const layerB = randomLayer(9, 14, 22);
  const opaque = randomLayer(12, 8, 23, 255);
  const cases: [string, LayerDraw[]][] = [
    ['translated by a fraction', [{ layer: layerA, placement: at(40.37, 22.81) }]],
    ['rotated', [{ layer: layerA, placement: at(50.2, 30.9, { rotation: 33 }) }]],
    [
      'scaled up and turned',
      [{ layer: layerB, placement: at(47, 29, { scale: 1.7, rotation: -71 }) }],
    ],
    [
      'scaled down',
      [{ layer: layerA, placement: at(61.5, 18.25, { scale: 0.43, rotation: 200 }) }],
    ],
    ['faded', [{ layer: opaque, placement: at(30.6, 40.1, { opacity: 0.35, rotation: 12 }) }]],
    [
      'partly off the canvas on every side',
      [
        { layer: layerA, placement: at(3.2, 30, { rotation: 10 }) },
        { layer: layerB, placement: at(97.6, 2.4, { scale: 1.3 }) },
        { layer: opaque, placement: at(50, 58.7, { rotation: 45, scale: 2 }) },
      ],
    ],
    [
      'overlapping, in order',
      [
        { layer: opaque, placement: at(50, 30, { scale: 3.1, rotation: 5 }) },
        { layer: layerA, placement: at(52.5, 31.5, { rotation: -20, opacity: 0.8 }) },
        { layer: layerB, placement: at(48.1, 28.9, { scale: 1.2, opacity: 0.6, rotation: 95 }) },
      ],
    ],
  ];

  it.each(cases)('%s: every byte within 1 of it', (_, draws) => {
    const backdrop = bytes(W * H * 3, 31);
    const ours = frame(backdrop, draws);
    const theirs = tfjsFrame(backdrop, draws);
    // Float rounding (float32 tensor math vs doubles) can only move a value that sits on a
    // rounding boundary by one.
    expect(maxDifference(ours, theirs)).toBeLessThanOrEqual(1);
    // And the layers did draw something.
    expect(maxDifference(ours, backdrop)).toBeGreaterThan(0);
  });
});
