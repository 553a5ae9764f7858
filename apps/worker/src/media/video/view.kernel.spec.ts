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

  it('renders sparse samplings (above ~1.7 source pixels per output pixel) with the plain loops', async () => {
    const gains = gainsFor(10 * 6 * 3);
    const src = noise(40, 24, 9);
    const renderer = await CameraRenderer.start(gains, 10, 6, { width: 40, height: 24 }, 1);
    try {
      await renderer.render(0, [0, 0, 1, 1], src);
      const expected = new Uint8Array(10 * 6 * 3);
      renderFrame(expected, 0, gains, 10, 6, [0, 0, 1, 1], src);
      expect(Buffer.compare(renderer.output(0, 1), expected)).toBe(0);
    } finally {
      await renderer.close();
    }
  });

  it('renders with the plain loops where there is no WebAssembly SIMD', async () => {
    const start = jest.spyOn(ViewThread, 'start').mockResolvedValue(undefined);
    try {
      const gains = gainsFor(13 * 7 * 3);
      const [a, b] = [4, 5].map((seed) => noise(17, 9, seed));
      const renderer = await CameraRenderer.start(gains, 13, 7, { width: 17, height: 9 }, 2);
      expect(renderer.simd).toBe(false);
      const box: CameraBox = [0.05, 0.1, 0.9, 0.8];
      await Promise.all([
        renderer.render(0, box, a),
        renderer.render(1, box, a, { image: b, weight: 0.6 }),
      ]);
      const expected = new Uint8Array(2 * 13 * 7 * 3);
      renderFrame(expected, 0, gains, 13, 7, box, a);
      renderFrame(expected, 13 * 7 * 3, gains, 13, 7, box, a, { image: b, weight: 0.6 });
      expect(Buffer.compare(renderer.output(0, 2), expected)).toBe(0);
      await renderer.close();
    } finally {
      start.mockRestore();
    }
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
