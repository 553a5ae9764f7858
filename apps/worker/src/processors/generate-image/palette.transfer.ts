import type * as TfCore from '@tensorflow/tfjs-core';
import { tidyValue } from '@app/gpu';

type Tf = typeof TfCore;

/** Pixels of one palette source (interleaved RGBA bytes) and its share of the palette. */
export interface PaletteSource {
  pixels: Uint8Array;
  weight: number;
}

/** Colour statistics in YCbCr (luma + two chroma axes), where channels are nearly independent. */
export interface ColourStats {
  mean: [number, number, number];
  std: [number, number, number];
}

export interface Palette {
  /** Dominant colours (0..1 RGB), most weight first. */
  colours: [number, number, number][];
  shares: number[];
  stats: ColourStats;
}

// RGB → YCbCr (BT.601, chroma not offset: only differences of means matter here).
const RGB_TO_YCC = [
  [0.299, 0.587, 0.114],
  [-0.168736, -0.331264, 0.5],
  [0.5, -0.418688, -0.081312],
];

/**
 * Weighted k-means over the sources' pixels (a few Lloyd iterations, started from luma quantiles
 * so it is deterministic) plus their YCbCr mean and deviation. Synchronous: the inputs are
 * thumbnails (64×64 each).
 */
export function extractPalette(
  tf: Tf,
  sources: readonly PaletteSource[],
  k = 5,
  iterations = 8,
): Palette {
  const count = sources.reduce((n, s) => n + s.pixels.length / 4, 0);
  const points = new Float32Array(count * 3);
  const weights = new Float32Array(count);
  let at = 0;
  for (const s of sources) {
    const n = s.pixels.length / 4;
    let opacity = 0;
    for (let i = 0; i < n; i++) opacity += s.pixels[i * 4 + 3];
    // Transparent pixels (cut-out references) say nothing about the palette; a wholly
    // transparent image counts all its pixels rather than dividing by zero.
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) points[(at + i) * 3 + c] = s.pixels[i * 4 + c] / 255;
      weights[at + i] = opacity > 0 ? (s.pixels[i * 4 + 3] * s.weight) / opacity : s.weight / n;
    }
    at += n;
  }
  return tidyValue(tf, () => {
    const p = tf.tensor2d(points, [count, 3]);
    const w = tf.tensor2d(weights, [count, 1]);
    const stats = weightedStats(tf, p, w);

    // Start from k pixels spread over the luma range.
    const luma = tf.matMul(p, tf.tensor2d([0.299, 0.587, 0.114], [3, 1])).dataSync();
    const visible = Array.from(luma.keys()).filter((i) => weights[i] > 0);
    const order = (visible.length > 0 ? visible : Array.from(luma.keys())).sort(
      (a, b) => luma[a] - luma[b] || a - b,
    );
    const start = Array.from(
      { length: k },
      (_, i) => order[Math.floor(((i + 0.5) / k) * (order.length - 1))],
    );
    let centres: TfCore.Tensor2D = tf.gather(p, start);

    const pNorm = tf.sum(tf.square(p), 1, true);
    const wp = tf.mul(p, w);
    let share: TfCore.Tensor2D = tf.zeros([k, 1]);
    for (let it = 0; it < iterations; it++) {
      const next = tf.tidy(() => {
        const dist = tf.add(
          tf.sub(pNorm, tf.mul(tf.matMul(p, centres, false, true), 2)),
          tf.transpose(tf.sum(tf.square(centres), 1, true)),
        );
        const assign = tf.cast(tf.oneHot(tf.argMin(dist, 1), k), 'float32');
        const mass = tf.matMul(assign, w, true, false);
        const sums = tf.matMul(assign, wp, true, false);
        // An empty cluster keeps its centre.
        const moved = tf.where(
          tf.greater(tf.tile(mass, [1, 3]), 1e-9),
          tf.div(sums, tf.maximum(mass, 1e-9)),
          centres,
        );
        return [moved, mass] as [TfCore.Tensor2D, TfCore.Tensor2D];
      });
      centres.dispose();
      share.dispose();
      [centres, share] = next;
    }

    const c = centres.arraySync();
    const m = Array.from(share.dataSync());
    const total = m.reduce((a, b) => a + b, 0) || 1;
    const ranked = c
      .map((colour, i) => ({ colour: colour as [number, number, number], share: m[i] / total }))
      .sort((a, b) => b.share - a.share);
    return {
      colours: ranked.map((r) => r.colour),
      shares: ranked.map((r) => r.share),
      stats,
    };
  });
}

/** YCbCr mean and deviation of channel-major colour `rgb` ([3, N], 0..1). */
export function colourStats(tf: Tf, rgb: TfCore.Tensor2D): ColourStats {
  return tidyValue(tf, () => {
    const n = rgb.shape[1];
    return weightedStats(tf, tf.transpose(rgb), tf.fill([n, 1], 1 / n));
  });
}

function weightedStats(tf: Tf, p: TfCore.Tensor2D, w: TfCore.Tensor2D): ColourStats {
  return tidyValue(tf, () => {
    const ycc = tf.matMul(p, tf.tensor2d(RGB_TO_YCC), false, true);
    const total = tf.sum(w);
    const mean = tf.div(tf.sum(tf.mul(ycc, w), 0), total);
    const variance = tf.div(tf.sum(tf.mul(tf.square(tf.sub(ycc, mean)), w), 0), total);
    const m = mean.dataSync();
    const v = variance.dataSync();
    return {
      mean: [m[0], m[1], m[2]],
      std: [Math.sqrt(v[0]), Math.sqrt(v[1]), Math.sqrt(v[2])],
    };
  });
}

/**
 * Per-channel mean/deviation transfer in YCbCr from `from` towards `to`, blended by `strength`,
 * folded into one affine map on RGB: `out = A · rgb + b` (A [3, 3], b [3, 1]).
 */
export function transferMap(
  tf: Tf,
  from: ColourStats,
  to: ColourStats,
  strength: number,
): { a: TfCore.Tensor2D; b: TfCore.Tensor2D } {
  const gain: number[] = [];
  const shift: number[] = [];
  for (let c = 0; c < 3; c++) {
    // Bounded: a flat source must not blow noise up, a greyscale target may remove colour.
    const s = Math.min(3, Math.max(0.05, to.std[c] / Math.max(from.std[c], 1e-4)));
    gain.push(1 - strength + strength * s);
    shift.push(strength * (to.mean[c] - s * from.mean[c]));
  }
  return tf.tidy(() => {
    const m = tf.tensor2d(RGB_TO_YCC);
    const inverse = tf.tensor2d(invert3(RGB_TO_YCC.flat()), [3, 3]);
    const a = tf.matMul(inverse, tf.mul(tf.tensor2d(gain, [3, 1]), m));
    const b = tf.matMul(inverse, tf.tensor2d(shift, [3, 1]));
    return { a, b } as { a: TfCore.Tensor2D; b: TfCore.Tensor2D };
  });
}

/**
 * Pulls channel-major colour ([3, N]) towards the palette's nearest colours (a soft assignment,
 * softmax over negative squared distances), by `strength`. Call inside tidy.
 */
export function mapToPalette(
  tf: Tf,
  rgb: TfCore.Tensor2D,
  palette: { colours: TfCore.Tensor2D; norms: TfCore.Tensor2D },
  strength: number,
  temperature = 0.02,
): TfCore.Tensor2D {
  const logits = tf.mul(
    tf.sub(tf.mul(tf.matMul(palette.colours, rgb), 2), palette.norms),
    1 / temperature,
  );
  const e = tf.exp(tf.sub(logits, tf.max(logits, 0, true)));
  const assign = tf.div(e, tf.sum(e, 0, true));
  const mapped = tf.matMul(palette.colours, assign, true, false);
  return tf.add(rgb, tf.mul(tf.sub(mapped, rgb), strength));
}

function invert3(m: number[]): number[] {
  const [a, b, c, d, e, f, g, h, i] = m as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const A = e * i - f * h;
  const B = -(d * i - f * g);
  const C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [
    A / det,
    -(b * i - c * h) / det,
    (b * f - c * e) / det,
    B / det,
    (a * i - c * g) / det,
    -(a * f - c * d) / det,
    C / det,
    -(a * h - b * g) / det,
    (a * e - b * d) / det,
  ];
}

export function toHex(rgb: readonly number[]): string {
  return `#${rgb
    .map((v) =>
      Math.round(Math.min(1, Math.max(0, v)) * 255)
        .toString(16)
        .padStart(2, '0'),
    )
    .join('')}`;
}
