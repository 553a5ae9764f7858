import type { CameraBox } from './camera.path';
import {
  axisSamples,
  cameraFramesPerBatch,
  q15Weight,
  renderFrame,
  type RgbImage,
} from './camera.view';
import { lightGains } from './scene.lighting';

/** A 100×60 source: left half 50, right half 200 (grey), with a bright 10×10 square at (20, 20). */
function source(): RgbImage {
  const width = 100;
  const height = 60;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const square = x >= 20 && x < 30 && y >= 20 && y < 30;
      data.fill(square ? 255 : x < 50 ? 50 : 200, (y * width + x) * 3, (y * width + x + 1) * 3);
    }
  }
  return { data, width, height };
}

/** Smooth structure with every channel different: what a blurred storyboard frame looks like. */
function smooth(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = 127.5 + 127 * Math.sin(x / 7 + y / 11);
      data[i + 1] = 127.5 + 127 * Math.cos(x / 13 - y / 5);
      data[i + 2] = (x * 255) / width;
    }
  }
  return { data, width, height };
}

function at(rgb: Uint8Array, width: number, x: number, y: number): number[] {
  const i = (y * width + x) * 3;
  return [rgb[i], rgb[i + 1], rgb[i + 2]];
}

const unlit = (width: number, height: number) =>
  lightGains(new Array<number>(width * height * 3).fill(1));

function render(
  image: RgbImage,
  box: CameraBox,
  width: number,
  height: number,
  gains = unlit(width, height),
  next?: { image: RgbImage; weight: number },
): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  renderFrame(out, 0, gains, width, height, box, image, next);
  return out;
}

/** Bilinear sampling in floating point, pixel centres at k + ½, edges clamped. */
function bilinear(image: RgbImage, box: CameraBox, width: number, height: number): Float64Array {
  const [y1, x1, y2, x2] = box;
  const { data, width: sw, height: sh } = image;
  const out = new Float64Array(width * height * 3);
  const clamp = (v: number, n: number) => Math.min(n - 1, Math.max(0, v));
  for (let y = 0; y < height; y++) {
    const sy = clamp(y1 * sh + ((y + 0.5) * (y2 - y1) * sh) / height - 0.5, sh);
    const r0 = Math.floor(sy);
    const r1 = Math.min(sh - 1, r0 + 1);
    const fy = sy - r0;
    for (let x = 0; x < width; x++) {
      const sx = clamp(x1 * sw + ((x + 0.5) * (x2 - x1) * sw) / width - 0.5, sw);
      const c0 = Math.floor(sx);
      const c1 = Math.min(sw - 1, c0 + 1);
      const fx = sx - c0;
      for (let c = 0; c < 3; c++) {
        const p = (r: number, k: number) => data[(r * sw + k) * 3 + c];
        const top = p(r0, c0) * (1 - fx) + p(r0, c1) * fx;
        const bottom = p(r1, c0) * (1 - fx) + p(r1, c1) * fx;
        out[(y * width + x) * 3 + c] = top * (1 - fy) + bottom * fy;
      }
    }
  }
  return out;
}

describe('camera view', () => {
  it('sizes batches by pixels', () => {
    expect(cameraFramesPerBatch(1920, 1080)).toBe(6);
    expect(cameraFramesPerBatch(3840, 2160)).toBe(1);
    expect(cameraFramesPerBatch(160, 90)).toBe(12);
  });

  it('samples each axis at subpixel positions, clamped to the image', () => {
    // The output's own size at a whole-pixel offset: every pixel copied, no weights.
    const copy = axisSamples(3, 10, 20, 10);
    expect(Array.from(copy.a)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(Array.from(copy.b)).toEqual(Array.from(copy.a));
    expect(new Set(copy.w)).toEqual(new Set([0]));
    // Half a pixel further: every output pixel halfway between two source pixels.
    const half = axisSamples(3.5, 10, 20, 10);
    expect(Array.from(half.a)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(Array.from(half.b)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    expect(new Set(half.w)).toEqual(new Set([16_384]));
    // Reducing 3:2 over the whole axis, and a window reaching past both edges.
    const reduce = axisSamples(0, 30, 30, 20);
    expect(reduce.a[0]).toBe(0);
    expect(reduce.w[0]).toBe(8_192);
    expect(reduce.b[19]).toBe(29);
    const outside = axisSamples(-5, 30, 20, 10);
    expect([outside.a[0], outside.b[0], outside.w[0]]).toEqual([0, 0, 0]);
    expect([outside.a[9], outside.b[9], outside.w[9]]).toEqual([19, 19, 0]);
  });

  it('cuts the box out of the source and scales it to the output', () => {
    const src = source();
    // The left half, stretched to 100×60: the square doubles in width.
    const left = render(src, [0, 0, 1, 0.5], 100, 60);
    expect(at(left, 100, 10, 5)).toEqual([50, 50, 50]);
    expect(at(left, 100, 42, 25)).toEqual([255, 255, 255]);
    expect(at(left, 100, 57, 25)).toEqual([255, 255, 255]);
    expect(at(left, 100, 50, 35)).toEqual([50, 50, 50]);
    expect(at(left, 100, 98, 59)).toEqual([50, 50, 50]);
    // The last column samples across the window's edge, as a camera sees a continuous picture.
    expect(at(left, 100, 99, 59)).toEqual([88, 88, 88]);
    // The right half is uniform.
    const right = render(src, [0, 0.5, 1, 1], 50, 30);
    expect(new Set(right)).toEqual(new Set([200]));
    // The whole source at its own size comes back unchanged.
    expect(Buffer.compare(render(src, [0, 0, 1, 1], 100, 60), Buffer.from(src.data))).toBe(0);
    // A window of the output's size at a whole-pixel offset is an exact crop.
    const crop = render(src, [10 / 60, 15 / 100, 40 / 60, 65 / 100], 50, 30);
    for (const [x, y] of [
      [0, 0],
      [7, 12],
      [49, 29],
    ]) {
      expect(at(crop, 50, x, y)).toEqual(at(src.data, 100, x + 15, y + 10));
    }
  });

  it.each<[string, CameraBox, number, number]>([
    ['reduces 1.5:1 (the largest source scale)', [0, 0, 1, 1], 80, 45],
    ['reduces a little at a subpixel offset', [0.03, 0.021, 0.97, 0.987], 100, 56],
    ['enlarges', [0.2, 0.3, 0.6, 0.7], 120, 68],
  ])('%s like a float bilinear resample', (_, box, width, height) => {
    const src = smooth(120, 68);
    const out = render(src, box, width, height);
    const ref = bilinear(src, box, width, height);
    let worst = 0;
    let squares = 0;
    for (let i = 0; i < out.length; i++) {
      const d = Math.abs(out[i] - ref[i]);
      worst = Math.max(worst, d);
      squares += d * d;
    }
    // Weights in Q15 and 7 fractional bits between the passes: off by at most one step.
    expect(worst).toBeLessThanOrEqual(1);
    const psnr = 10 * Math.log10((255 * 255) / (squares / out.length));
    expect(psnr).toBeGreaterThan(50);
  });

  it('multiplies by the light and crossfades, rounding and clipping to bytes', () => {
    const gains = lightGains([1, 0.5, 2, 1.5, 10, 0]);
    expect(Array.from(gains)).toEqual([256, 128, 512, 384, 1024, 0]);
    // 2×1 sources shown 1:1, so only the light and the crossfade change the bytes.
    const view = { data: Uint8Array.from([100, 101, 200, 3, 30, 255]), width: 2, height: 1 };
    const other = { data: Uint8Array.from([200, 201, 0, 255, 255, 255]), width: 2, height: 1 };
    const whole: CameraBox = [0, 0, 1, 1];
    const out = new Uint8Array(8);
    renderFrame(out, 2, gains, 2, 1, whole, view);
    expect(Array.from(out)).toEqual([0, 0, 100, 51, 255, 5, 120, 0]);
    renderFrame(out, 0, gains, 2, 1, whole, view, { image: other, weight: 0.5 });
    // (a + b) / 2 · light: 150, 151 / 2, 100 · 2, 129 · 1.5, 142.5 · 4 → clipped, 0.
    expect(Array.from(out.subarray(0, 6))).toEqual([150, 76, 200, 194, 255, 0]);
    renderFrame(out, 0, gains, 2, 1, whole, view, { image: other, weight: 1 });
    expect(Array.from(out.subarray(0, 6))).toEqual([200, 101, 0, 255, 255, 0]);
    // A weight of 0 shows the first shot alone.
    renderFrame(out, 0, gains, 2, 1, whole, view, { image: other, weight: 0 });
    expect(Array.from(out.subarray(0, 6))).toEqual([100, 51, 255, 5, 120, 0]);
    expect(q15Weight(1)).toBe(32_767);
    expect(q15Weight(0.5)).toBe(16_384);
    expect(() => renderFrame(new Uint8Array(4), 0, gains, 2, 1, whole, view)).toThrow(RangeError);
    const small = { data: new Uint8Array(3), width: 1, height: 1 };
    expect(() =>
      renderFrame(out, 0, gains, 2, 1, whole, view, { image: small, weight: 0.5 }),
    ).toThrow(RangeError);
  });
});
