import {
  cameraFramesPerBatch,
  cameraView,
  cameraWindow,
  lightGains,
  shadeFrame,
  type RgbImage,
} from './camera.view';

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

function at(rgb: Uint8Array, width: number, x: number, y: number): number[] {
  const i = (y * width + x) * 3;
  return [rgb[i], rgb[i + 1], rgb[i + 2]];
}

describe('camera view', () => {
  it('sizes batches by pixels', () => {
    expect(cameraFramesPerBatch(1920, 1080)).toBe(6);
    expect(cameraFramesPerBatch(3840, 2160)).toBe(1);
    expect(cameraFramesPerBatch(160, 90)).toBe(12);
  });

  it('rounds a camera box to a whole-pixel window inside the source', () => {
    expect(cameraWindow([0, 0, 1, 1], 100, 60)).toEqual({
      left: 0,
      top: 0,
      width: 100,
      height: 60,
    });
    expect(cameraWindow([0.1, 0.254, 0.6, 0.756], 100, 60)).toEqual({
      left: 25,
      top: 6,
      width: 51,
      height: 30,
    });
    // Never empty, never outside.
    expect(cameraWindow([0.5, 0.999, 0.5, 1.2], 100, 60)).toEqual({
      left: 99,
      top: 30,
      width: 1,
      height: 1,
    });
  });

  it('cuts the box out of the source and scales it to the output', async () => {
    const src = source();
    // The left half, stretched to 100×60: the square doubles in width.
    const left = await cameraView(src, [0, 0, 1, 0.5], 100, 60);
    expect(left.length).toBe(100 * 60 * 3);
    expect(at(left, 100, 10, 5)).toEqual([50, 50, 50]);
    expect(at(left, 100, 42, 25)).toEqual([255, 255, 255]);
    expect(at(left, 100, 57, 25)).toEqual([255, 255, 255]);
    expect(at(left, 100, 50, 35)).toEqual([50, 50, 50]);
    expect(at(left, 100, 99, 59)).toEqual([50, 50, 50]);
    // The right half is uniform.
    const right = await cameraView(src, [0, 0.5, 1, 1], 50, 30);
    expect(new Set(right)).toEqual(new Set([200]));
    // The whole source at its own size comes back unchanged.
    expect(
      Buffer.compare(await cameraView(src, [0, 0, 1, 1], 100, 60), Buffer.from(src.data)),
    ).toBe(0);
  });

  it('multiplies by the light and crossfades, rounding and clipping to bytes', () => {
    const gains = lightGains([1, 0.5, 2, 1.5, 10, 0]);
    expect(Array.from(gains)).toEqual([256, 128, 512, 384, 1024, 0]);
    const view = Uint8Array.from([100, 101, 200, 3, 30, 255]);
    const other = Uint8Array.from([200, 201, 0, 255, 255, 255]);
    const out = new Uint8Array(8);
    shadeFrame(out, 2, gains, view);
    expect(Array.from(out)).toEqual([0, 0, 100, 51, 255, 5, 120, 0]);
    shadeFrame(out, 0, gains, view, { view: other, weight: 0.5 });
    // (a + b) / 2 · light: 150, 151 / 2, 100 · 2, 129 · 1.5, 142.5 · 4 → clipped, 0.
    expect(Array.from(out.subarray(0, 6))).toEqual([150, 76, 200, 194, 255, 0]);
    shadeFrame(out, 0, gains, view, { view: other, weight: 1 });
    expect(Array.from(out.subarray(0, 6))).toEqual([200, 101, 0, 255, 255, 0]);
    expect(() => shadeFrame(new Uint8Array(4), 0, gains, view)).toThrow(RangeError);
  });
});
