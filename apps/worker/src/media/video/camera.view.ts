import sharp from 'sharp';
import type { CameraBox } from './camera.path';
import { LightKernel, q15Weight } from './light.kernel';

/** Interleaved rgb24 pixels, row-major. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/** Whole-pixel rectangle of a source image. */
export interface PixelWindow {
  left: number;
  top: number;
  width: number;
  height: number;
}

/**
 * Output pixels per batch of camera frames: six 1080p frames (~37 MB of views and as much output
 * for a batch with crossfades). Six views keep sharp's four pool threads busy on two cores while
 * ffmpeg takes the previous batch; a batch takes ~0.1 s, so a cancel is seen quickly.
 */
const BATCH_PIXELS = 6 * 1920 * 1080;
const MAX_BATCH_FRAMES = 12;

export function cameraFramesPerBatch(width: number, height: number): number {
  return Math.max(1, Math.min(MAX_BATCH_FRAMES, Math.floor(BATCH_PIXELS / (width * height))));
}

/**
 * The source window a camera box covers: its edges rounded to whole source pixels (at least one
 * pixel, inside the image). Positions are off by at most half a source pixel.
 */
export function cameraWindow(box: CameraBox, width: number, height: number): PixelWindow {
  const [y1, x1, y2, x2] = box;
  const span = (from: number, to: number, size: number): [number, number] => {
    const a = Math.min(size - 1, Math.max(0, Math.round(from * size)));
    const b = Math.min(size, Math.max(a + 1, Math.round(to * size)));
    return [a, b - a];
  };
  const [left, w] = span(x1, x2, width);
  const [top, h] = span(y1, y2, height);
  return { left, top, width: w, height: h };
}

/**
 * What the camera sees of `source` through `box`, scaled to `width`×`height`: libvips extracts
 * the window and resizes it (linear kernel: bilinear when enlarging, a triangle filter that also
 * averages away aliasing when reducing), in sharp's thread pool. Returns rgb24.
 */
export async function cameraView(
  source: RgbImage,
  box: CameraBox,
  width: number,
  height: number,
): Promise<Buffer> {
  const win = cameraWindow(box, source.width, source.height);
  let image = sharp(source.data, {
    raw: { width: source.width, height: source.height, channels: 3 },
  });
  if (win.width !== source.width || win.height !== source.height) image = image.extract(win);
  if (win.width !== width || win.height !== height) {
    image = image.resize(width, height, { fit: 'fill', kernel: 'linear' });
  }
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  if (info.width !== width || info.height !== height || info.channels !== 3) {
    throw new Error(`camera view came out ${info.width}x${info.height}x${info.channels}`);
  }
  return data;
}

/** Fixed-point unit of the light gains. */
const GAIN_ONE = 256;
/** Gains are capped at this many times the input (keeps the fixed-point products in 32 bits). */
const MAX_GAIN = 4;

/**
 * A screen light (per pixel and channel, 1 = unchanged) as fixed-point gains for `shadeFrame`:
 * `round(light × 256)`, at most 4×.
 */
export function lightGains(light: ArrayLike<number>): Uint16Array {
  const gains = new Uint16Array(light.length);
  for (let i = 0; i < light.length; i++) {
    gains[i] = Math.min(MAX_GAIN * GAIN_ONE, Math.max(0, Math.round(light[i] * GAIN_ONE)));
  }
  return gains;
}

/**
 * One output frame into `target` at `offset`: the camera `view` — crossfaded into `next.view` by
 * `next.weight` (0..1) during a transition — times the screen light, rounded and clipped to
 * bytes. Integer arithmetic in the steps of the SIMD kernel (pixels × 128, the weight in Q15,
 * `(x · y + 2¹⁴) >> 15` products), so both give the same bytes on any machine.
 */
export function shadeFrame(
  target: Uint8Array,
  offset: number,
  gains: Uint16Array,
  view: Uint8Array,
  next?: { view: Uint8Array; weight: number },
): void {
  const n = gains.length;
  if (view.length < n || target.length < offset + n) throw new RangeError('frame size mismatch');
  if (!next || next.weight <= 0) {
    for (let i = 0; i < n; i++) {
      const v = (view[i] * gains[i] + 128) >> 8;
      target[offset + i] = v > 255 ? 255 : v;
    }
    return;
  }
  const b = next.view;
  if (b.length < n) throw new RangeError('frame size mismatch');
  const w = q15Weight(next.weight);
  for (let i = 0; i < n; i++) {
    // |(b − a)·128·w| < 2³⁰ and x·g ≤ 32 640 · 1024: all small integers.
    const x = (view[i] << 7) + ((((b[i] - view[i]) << 7) * w + 16384) >> 15);
    const v = (x * gains[i] + 16384) >> 15;
    target[offset + i] = v > 255 ? 255 : v < 0 ? 0 : v;
  }
}

/**
 * Shades frames with one screen light: through the WebAssembly SIMD kernel (~5× faster), or
 * `shadeFrame` where there is no WebAssembly SIMD (the same bytes).
 */
export class FrameShader {
  private readonly kernel?: LightKernel;

  constructor(private readonly gains: Uint16Array) {
    this.kernel = LightKernel.create(gains);
  }

  get simd(): boolean {
    return this.kernel !== undefined;
  }

  shade(
    target: Uint8Array,
    offset: number,
    view: Uint8Array,
    next?: { view: Uint8Array; weight: number },
  ): void {
    if (!this.kernel) shadeFrame(target, offset, this.gains, view, next);
    else if (!next || next.weight <= 0) this.kernel.shade(target, offset, view);
    else this.kernel.fade(target, offset, view, next.view, next.weight);
  }
}
