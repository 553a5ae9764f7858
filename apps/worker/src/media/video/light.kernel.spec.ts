import { lightGains, shadeFrame } from './camera.view';
import { LIGHT_KERNEL_WASM, LightKernel } from './light.kernel';

describe('light kernel', () => {
  it('is valid WebAssembly (with SIMD) on this Node', () => {
    expect(LIGHT_KERNEL_WASM.length).toBeLessThan(512);
    expect(LightKernel.create(new Uint16Array(48))).toBeDefined();
  });

  it.each([16, 1000, 160 * 90 * 3])(
    'gives the bytes of the plain loop, %i bytes at an offset',
    (n) => {
      // Every byte value against gains across the whole range (some clipped at 4×, some at 255).
      const gains = lightGains(Array.from({ length: n }, (_, i) => ((i * 7919) % 1200) / 256));
      const view = Uint8Array.from({ length: n }, (_, i) => (i * 2654435761) >>> 24);
      const expected = new Uint8Array(n + 7).fill(9);
      shadeFrame(expected, 7, gains, view);
      const kernel = LightKernel.create(gains);
      expect(kernel).toBeDefined();
      const actual = new Uint8Array(n + 7).fill(9);
      kernel!.shade(actual, 7, view);
      expect(Buffer.compare(actual, expected)).toBe(0);
      // A second frame through the same kernel: nothing of the first is left over.
      const dark = new Uint8Array(n).fill(3);
      shadeFrame(expected, 7, gains, dark);
      kernel!.shade(actual, 7, dark);
      expect(Buffer.compare(actual, expected)).toBe(0);
      expect(() => kernel!.shade(new Uint8Array(n), 1, view)).toThrow(RangeError);

      // Crossfades, including the ends and weights between Q15 steps.
      const other = Uint8Array.from({ length: n }, (_, i) => (i * 40503) & 255);
      for (const weight of [1e-6, 0.25, 0.5, 0.7071, 0.999, 1]) {
        shadeFrame(expected, 7, gains, view, { view: other, weight });
        kernel!.fade(actual, 7, view, other, weight);
        expect(Buffer.compare(actual, expected)).toBe(0);
      }
    },
  );
});
