import path from 'node:path';
import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import type { AppConfig } from '@app/config';
import { defaultModelSources, GpuService, ModelRepository, packageRoot } from '@app/gpu';
import type { UpscaleQuality, UpscaleScale } from '@app/tasks';
import { photoLikeImage, psnr } from '@app/testing';
import { ImageUpscaler, upscaleModelName } from './image.upscaler';
import { featherWeights, tileStarts } from './upscale.tiles';

/**
 * A real photograph: the party scene of @vladmandic/human's assets/samples.jpg (MIT, a
 * dependency of ours), a crop of dresses, lace, skin and hands away from its annotation text.
 */
async function photo(size: number): Promise<Buffer> {
  const root = packageRoot('@vladmandic/human');
  if (!root) throw new Error('@vladmandic/human is not installed');
  return sharp(path.join(root, 'assets', 'samples.jpg'))
    .extract({ left: 250, top: 700, width: size, height: size })
    .removeAlpha()
    .raw()
    .toBuffer();
}

const raw = (width: number, height: number) => ({ raw: { width, height, channels: 3 as const } });

async function resize(pixels: Buffer, w: number, h: number, toW: number, toH: number) {
  return sharp(pixels, raw(w, h)).resize(toW, toH, { kernel: 'cubic' }).raw().toBuffer();
}

/** Mean absolute difference of two rows (or columns) of an RGB image. */
function lineStep(img: Buffer, width: number, height: number, at: number, axis: 'row' | 'col') {
  let sum = 0;
  const n = axis === 'row' ? width : height;
  for (let i = 0; i < n; i++) {
    const [a, b] =
      axis === 'row'
        ? [(at * width + i) * 3, ((at - 1) * width + i) * 3]
        : [(i * width + at) * 3, (i * width + at - 1) * 3];
    for (let c = 0; c < 3; c++) sum += Math.abs(img[a + c] - img[b + c]);
  }
  return sum / (n * 3);
}

describe('tile layout', () => {
  it('covers the length with equal tiles overlapping at least by the overlap', () => {
    for (const [length, tile, overlap] of [
      [100, 64, 16],
      [1000, 128, 8],
      [129, 128, 8],
      [64, 64, 8],
      [30, 64, 8],
      [513, 24, 4],
    ]) {
      const starts = tileStarts(length, tile, overlap);
      const side = Math.min(tile, length);
      expect(starts[0]).toBe(0);
      expect(starts[starts.length - 1] + side).toBe(length);
      for (let i = 1; i < starts.length; i++) {
        expect(starts[i - 1] + side - starts[i]).toBeGreaterThanOrEqual(overlap);
        expect(starts[i]).toBeGreaterThan(starts[i - 1]);
      }
    }
  });

  it('feathers neighbours into weights that sum to one, with dead margins at inner edges', () => {
    const scale = 4;
    const starts = tileStarts(200, 64, 8);
    const sum = new Float32Array(200 * scale);
    starts.forEach((start, i) => {
      const w = featherWeights(starts, i, 64, scale);
      if (i > 0) expect(w[0]).toBe(0);
      if (i < starts.length - 1) expect(w[w.length - 1]).toBe(0);
      w.forEach((v, k) => (sum[start * scale + k] += v));
    });
    for (const v of sum) expect(v).toBeCloseTo(1, 5);
    // An image border keeps full weight: nothing else covers it.
    expect(featherWeights(starts, 0, 64, scale)[0]).toBe(1);
  });
});

describe('ImageUpscaler (ESRGAN weights on wasm)', () => {
  const config = {
    gpu: { backend: 'auto', modelsDir: '/nonexistent', modelCacheBytes: 2 ** 31 },
  } as unknown as AppConfig;
  let gpu: GpuService;
  let models: ModelRepository;
  let upscaler: ImageUpscaler;

  beforeAll(async () => {
    Logger.overrideLogger(false);
    gpu = new GpuService(config);
    await gpu.init();
    models = new ModelRepository(config, gpu, defaultModelSources(config));
    upscaler = new ImageUpscaler(gpu, models);
  });
  afterAll(() => {
    models.onModuleDestroy();
    Logger.overrideLogger(new Logger());
  });

  it('runs on the wasm backend here', () => {
    expect(gpu.backendName).toBe('wasm');
  });

  it.each<[UpscaleScale, UpscaleQuality, number]>([
    [4, 'fast', 192],
    [4, 'balanced', 192],
    [4, 'best', 96],
    [2, 'fast', 192],
    [2, 'balanced', 128],
  ])(
    '×%s %s: a downscaled photo comes back closer to the original than bicubic',
    async (scale, quality, size) => {
      const original = await photo(size);
      const small = size / scale;
      const down = await resize(original, size, size, small, small);
      const bicubic = await resize(down, small, small, size, size);
      const out = await upscaler.upscale({
        pixels: down,
        width: small,
        height: small,
        scale,
        quality,
      });

      expect(out).toMatchObject({
        width: size,
        height: size,
        model: upscaleModelName(quality, scale),
        backend: 'wasm',
      });
      const esrgan = psnr(original, out.pixels);
      const baseline = psnr(original, bicubic);
      expect({ quality, scale, esrgan, baseline, better: esrgan > baseline }).toMatchObject({
        better: true,
      });
    },
  );

  describe('tiling', () => {
    const W = 136;
    const H = 104;
    const scale = 4;
    const image = photoLikeImage(W, H, 3);
    let single: Buffer;

    beforeAll(async () => {
      const one = await upscaler.upscale({
        pixels: image,
        width: W,
        height: H,
        scale,
        quality: 'fast',
        tileSide: 1024,
      });
      expect(one.tiles).toBe(1);
      single = one.pixels;
    });

    it('several overlapping tiles give the single pass, without seams, tensors back to baseline', async () => {
      const baseline = gpu.tensorCount();
      const seen: Array<[number, number]> = [];
      const tiled = await upscaler.upscale({
        pixels: image,
        width: W,
        height: H,
        scale,
        quality: 'fast',
        tileSide: 48,
        overlap: 8,
        onTile: (done, total) => {
          seen.push([done, total]);
        },
      });
      expect(gpu.tensorCount()).toBe(baseline);
      const xs = tileStarts(W, 48, 8);
      const ys = tileStarts(H, 48, 8);
      expect(xs.length).toBeGreaterThanOrEqual(3);
      expect(ys.length).toBeGreaterThanOrEqual(2);
      expect(tiled.tiles).toBe(xs.length * ys.length);
      expect(seen).toEqual(Array.from({ length: tiled.tiles }, (_, i) => [i + 1, tiled.tiles]));

      let sum = 0;
      let max = 0;
      for (let i = 0; i < single.length; i++) {
        const d = Math.abs(tiled.pixels[i] - single[i]);
        sum += d;
        max = Math.max(max, d);
      }
      expect(sum / single.length).toBeLessThan(0.5);
      expect(max).toBeLessThanOrEqual(16);

      // Every output row and column (tile edges and overlaps included) steps from its neighbour
      // as in the single pass: no seam line. A hard cut between tiles fails this (tried).
      const OW = W * scale;
      const OH = H * scale;
      const lines = [
        ...Array.from({ length: OH - 1 }, (_, y) => ['row', y + 1] as const),
        ...Array.from({ length: OW - 1 }, (_, x) => ['col', x + 1] as const),
      ].map(([axis, at]) => {
        const step = lineStep(tiled.pixels, OW, OH, at, axis);
        const reference = lineStep(single, OW, OH, at, axis);
        return {
          axis,
          at,
          step,
          reference,
          seam: Math.abs(step - reference) > 0.25 + 0.05 * reference,
        };
      });
      expect(lines.filter((l) => l.seam)).toEqual([]);
    });

    it('the default tiles of every quality agree with one pass', async () => {
      // Sizes that need several default tiles (slim's are 128, medium ×2's 64).
      for (const [quality, w, h] of [
        ['fast', 300, 200],
        ['balanced', 150, 100],
      ] as const) {
        const big = photoLikeImage(w, h, 5);
        const tiled = await upscaler.upscale({
          pixels: big,
          width: w,
          height: h,
          scale: 2,
          quality,
        });
        const one = await upscaler.upscale({
          pixels: big,
          width: w,
          height: h,
          scale: 2,
          quality,
          tileSide: 1024,
        });
        expect(tiled.tiles).toBeGreaterThan(1);
        let sum = 0;
        for (let i = 0; i < one.pixels.length; i++)
          sum += Math.abs(tiled.pixels[i] - one.pixels[i]);
        expect({ quality, mean: sum / one.pixels.length }).toEqual({
          quality,
          mean: expect.any(Number) as number,
        });
        expect(sum / one.pixels.length).toBeLessThan(0.5);
      }
    });

    it.each([
      [1, 1],
      [3, 300],
      [300, 2],
    ])('upscales a %ix%i image (tiles only where it needs them)', async (w, h) => {
      const out = await upscaler.upscale({
        pixels: photoLikeImage(w, h, 9),
        width: w,
        height: h,
        scale: 2,
        quality: 'fast',
      });
      expect(out).toMatchObject({ width: w * 2, height: h * 2, tiles: w * h > 128 ? 3 : 1 });
      expect(out.pixels.length).toBe(w * h * 4 * 3);
    });

    it('stops between tiles when the signal aborts, and frees every tensor', async () => {
      const baseline = gpu.tensorCount();
      const controller = new AbortController();
      const reason = new Error('cancelled by the test');
      let tiles = 0;
      const run = upscaler.upscale({
        pixels: image,
        width: W,
        height: H,
        scale,
        quality: 'fast',
        tileSide: 32,
        overlap: 4,
        signal: controller.signal,
        onTile: (done) => {
          tiles = done;
          if (done === 2) controller.abort(reason);
        },
      });
      await expect(run).rejects.toBe(reason);
      expect(tiles).toBe(2);
      expect(gpu.tensorCount()).toBe(baseline);
    });
  });
});
