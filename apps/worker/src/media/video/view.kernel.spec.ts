import type { CameraBox } from './camera.path';
import { CameraRenderer, renderFrame, type RgbImage } from './camera.view';
import { lightGains } from './scene.lighting';
import { VIEW_KERNEL_WASM, ViewThread } from './view.kernel';

/** Deterministic noise: the worst case for any shortcut in the kernel. */
function noise(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, width, height };
}

/** Gains across the whole range, some clipped at 4× and some driving bytes past 255. */
const gainsFor = (n: number) =>
  lightGains(Array.from({ length: n }, (_, i) => ((i * 7919) % 1200) / 256));

/**
 * An independent reference of what a camera frame is, in plain floating point: output pixel
 * (x, y)'s centre maps linearly into the box (source pixel centres at k + ½, positions clamped to
 * the image), the source is sampled bilinearly there, crossfaded by `next.weight`, multiplied by
 * its gain (256 = 1×) and rounded to a byte. No code of camera.view.ts is used; the fixed-point
 * renderers must agree with it to within one step per byte.
 */
function referenceFrame(
  gains: Uint16Array,
  width: number,
  height: number,
  box: CameraBox,
  image: RgbImage,
  next?: { image: RgbImage; weight: number },
): Uint8Array {
  const [y1, x1, y2, x2] = box;
  const { width: sw, height: sh } = image;
  const position = (from: number, span: number, size: number, out: number, i: number) =>
    Math.min(size - 1, Math.max(0, from * size + ((i + 0.5) * span * size) / out - 0.5));
  const sample = (img: RgbImage, sx: number, sy: number, c: number) => {
    const [kx, ky] = [Math.floor(sx), Math.floor(sy)];
    const [fx, fy] = [sx - kx, sy - ky];
    const at = (x: number, y: number) =>
      img.data[(Math.min(y, sh - 1) * sw + Math.min(x, sw - 1)) * 3 + c];
    const top = at(kx, ky) * (1 - fx) + at(kx + 1, ky) * fx;
    const bottom = at(kx, ky + 1) * (1 - fx) + at(kx + 1, ky + 1) * fx;
    return top * (1 - fy) + bottom * fy;
  };
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = position(y1, y2 - y1, sh, height, y);
    for (let x = 0; x < width; x++) {
      const sx = position(x1, x2 - x1, sw, width, x);
      for (let c = 0; c < 3; c++) {
        let v = sample(image, sx, sy, c);
        if (next) v += (sample(next.image, sx, sy, c) - v) * next.weight;
        const i = (y * width + x) * 3 + c;
        out[i] = Math.min(255, Math.max(0, Math.round((v * gains[i]) / 256)));
      }
    }
  }
  return out;
}

/** The largest difference between two frames, per byte. */
function maxDiff(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

const BOXES: CameraBox[] = [
  [0, 0, 1, 1],
  [0.1, 0.13, 0.83, 0.91],
  [0.3, 0.2, 0.31, 0.21],
  // Past every edge: the samples clamp to the image.
  [-0.1, -0.2, 1.1, 1.3],
];

describe('camera view kernel', () => {
  it('is valid WebAssembly (with SIMD and shared memory) on this Node', async () => {
    expect(VIEW_KERNEL_WASM.length).toBeLessThan(1024);
    const renderer = await CameraRenderer.start(gainsFor(48), 4, 4, { width: 5, height: 5 }, 1);
    try {
      expect(renderer.simd).toBe(true);
    } finally {
      await renderer.close();
    }
  });

  it.each<[number, number, number, number]>([
    // Odd sizes: rows that are no multiple of 16 bytes, reductions, enlargements, 1:1.
    [37, 23, 50, 31],
    [16, 9, 24, 14],
    [101, 7, 101, 7],
    [64, 48, 40, 30],
    [5, 3, 9, 9],
    [1, 1, 1, 1],
    [96, 54, 144, 81],
  ])(
    'gives the bytes of the plain loops, %ix%i from %ix%i, with crossfades',
    async (width, height, sw, sh) => {
      const gains = gainsFor(width * height * 3);
      const [a, b, c] = [1, 2, 3].map((seed) => noise(sw, sh, seed));
      const renderer = await CameraRenderer.start(
        gains,
        width,
        height,
        { width: sw, height: sh },
        3,
      );
      try {
        expect(renderer.simd).toBe(true);
        let slot = 0;
        for (const box of BOXES) {
          // Shots come and go as in a clip: a alone, a into b, b into c, c alone.
          const frames = [
            { image: a },
            { image: a, next: { image: b, weight: 0.37 } },
            { image: b, next: { image: c, weight: 0.999 } },
            { image: c, next: { image: a, weight: 0 } },
          ];
          // Renders in flight together, into different slots.
          const pending = frames.map((f) => {
            const s = slot++ % 3;
            return { s, f, done: renderer.render(s, box, f.image, f.next) };
          });
          for (const { s, f, done } of pending.slice(0, 3)) {
            await done;
            const expected = new Uint8Array(width * height * 3);
            renderFrame(expected, 0, gains, width, height, box, f.image, f.next);
            expect(Buffer.compare(renderer.output(s, 1), expected)).toBe(0);
          }
          await pending[3].done;
          const expected = new Uint8Array(width * height * 3);
          renderFrame(expected, 0, gains, width, height, box, c);
          expect(Buffer.compare(renderer.output(pending[3].s, 1), expected)).toBe(0);
        }
      } finally {
        await renderer.close();
      }
    },
  );

  it('agrees with an independent floating-point reference, crossfades included', async () => {
    const [width, height, sw, sh] = [37, 23, 50, 31];
    const gains = gainsFor(width * height * 3);
    const [a, b] = [6, 7].map((seed) => noise(sw, sh, seed));
    const renderer = await CameraRenderer.start(gains, width, height, { width: sw, height: sh }, 2);
    try {
      expect(renderer.simd).toBe(true);
      for (const box of BOXES) {
        const next = { image: b, weight: 0.37 };
        await Promise.all([renderer.render(0, box, a), renderer.render(1, box, a, next)]);
        expect(
          maxDiff(renderer.output(0, 1), referenceFrame(gains, width, height, box, a)),
        ).toBeLessThanOrEqual(1);
        expect(
          maxDiff(renderer.output(1, 1), referenceFrame(gains, width, height, box, a, next)),
        ).toBeLessThanOrEqual(1);
      }
    } finally {
      await renderer.close();
    }
  });

  it('renders sparse samplings (above ~1.7 source pixels per output pixel) with the plain loops', async () => {
    // The kernel cannot take these; what the plain loops give instead is checked against the
    // independent reference (they are the renderer the kernel is compared with above).
    const gains = gainsFor(10 * 6 * 3);
    const [src, other] = [9, 10].map((seed) => noise(40, 24, seed));
    const renderer = await CameraRenderer.start(gains, 10, 6, { width: 40, height: 24 }, 2);
    try {
      const box: CameraBox = [0, 0, 1, 1];
      const next = { image: other, weight: 0.6 };
      await Promise.all([renderer.render(0, box, src), renderer.render(1, box, src, next)]);
      expect(
        maxDiff(renderer.output(0, 1), referenceFrame(gains, 10, 6, box, src)),
      ).toBeLessThanOrEqual(1);
      expect(
        maxDiff(renderer.output(1, 1), referenceFrame(gains, 10, 6, box, src, next)),
      ).toBeLessThanOrEqual(1);
      // The reference tells frames apart: the top-left corner copied 1:1 is far from this one.
      expect(
        maxDiff(renderer.output(0, 1), referenceFrame(gains, 10, 6, [0, 0, 0.25, 0.25], src)),
      ).toBeGreaterThan(1);
    } finally {
      await renderer.close();
    }
  });

  it('renders with the plain loops where there is no WebAssembly SIMD, the bytes of the kernel', async () => {
    const gains = gainsFor(13 * 7 * 3);
    const [a, b] = [4, 5].map((seed) => noise(17, 9, seed));
    const box: CameraBox = [0.05, 0.1, 0.9, 0.8];
    const renderBoth = async (renderer: CameraRenderer): Promise<Buffer> => {
      try {
        await Promise.all([
          renderer.render(0, box, a),
          renderer.render(1, box, a, { image: b, weight: 0.6 }),
        ]);
        return Buffer.from(renderer.output(0, 2));
      } finally {
        await renderer.close();
      }
    };
    const kernel = await CameraRenderer.start(gains, 13, 7, { width: 17, height: 9 }, 2);
    expect(kernel.simd).toBe(true);
    const withKernel = await renderBoth(kernel);

    const start = jest.spyOn(ViewThread, 'start').mockResolvedValue(undefined);
    let withoutKernel: Buffer;
    try {
      const plain = await CameraRenderer.start(gains, 13, 7, { width: 17, height: 9 }, 2);
      expect(plain.simd).toBe(false);
      withoutKernel = await renderBoth(plain);
    } finally {
      start.mockRestore();
    }
    expect(Buffer.compare(withoutKernel, withKernel)).toBe(0);
  });

  it('refuses sources of another size and slots it does not have', async () => {
    const renderer = await CameraRenderer.start(gainsFor(12), 2, 2, { width: 3, height: 3 }, 2);
    try {
      await expect(renderer.render(0, [0, 0, 1, 1], noise(4, 3, 1))).rejects.toThrow(RangeError);
      expect(() => renderer.output(1, 2)).toThrow(RangeError);
      expect(renderer.output(0, 2).length).toBe(24);
    } finally {
      await renderer.close();
    }
    await expect(renderer.render(0, [0, 0, 1, 1], noise(3, 3, 1))).rejects.toThrow(/closed/);
  });
});
