import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { AppConfig } from '@app/config';
import { defaultModelSources, GpuService, ModelRepository, packageRoot } from '@app/gpu';
import { maskIoU, renderPersonFigure } from '../../../test/support/person.figure';
import {
  applyMatte,
  PERSON_SEGMENTATION_MODELS,
  PersonSegmenter,
  type RawImage,
} from './person.segmenter';

const rgbImage = (f: { rgb: Buffer; width: number; height: number }): RawImage => ({
  data: f.rgb,
  width: f.width,
  height: f.height,
  channels: 3,
});

/**
 * The full-body photo @vladmandic/human embeds as its warm-up sample (a rendered woman in a white
 * dress, 1200×1200, on a light grey studio background).
 */
async function humanBodySample(): Promise<RawImage> {
  const root = packageRoot('@vladmandic/human')!;
  const source = readFileSync(path.join(root, 'dist', 'human.node-wasm.js'), 'utf8');
  const samples = [...source.matchAll(/=\s*`\s*(\/9j\/[A-Za-z0-9+/=\s]+)`/g)].map((m) =>
    Buffer.from(m[1].replace(/\s+/g, ''), 'base64'),
  );
  const sizes = await Promise.all(samples.map((s) => sharp(s).metadata()));
  const body = samples[sizes.findIndex((m) => m.width === 1200)];
  const { data, info } = await sharp(body).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: 3 };
}

describe('PersonSegmenter (real weights)', () => {
  let gpu: GpuService;
  let models: ModelRepository;
  let segmenter: PersonSegmenter;
  const ious: Record<string, number> = {};

  beforeAll(async () => {
    Logger.overrideLogger(false);
    const config = AppConfig.fromEnv({
      API_KEYS: 'test-key',
      TFJS_BACKEND: 'auto',
      MODELS_DIR: '/nonexistent-models-dir',
    });
    gpu = new GpuService(config);
    await gpu.init();
    models = new ModelRepository(config, gpu, defaultModelSources(config));
    await models.preload(Object.values(PERSON_SEGMENTATION_MODELS));
    segmenter = new PersonSegmenter(gpu, models);
  });
  afterAll(() => {
    models.onModuleDestroy();
    console.log(`person segmentation IoU on ${gpu.backendName}: ${JSON.stringify(ious)}`);
  });

  it.each([
    ['fast', 'standing_relaxed', 480, 720, 0.88],
    ['best', 'standing_relaxed', 480, 720, 0.95],
    ['fast', 'walking', 1280, 720, 0.85],
    ['best', 'walking', 1280, 720, 0.95],
  ] as const)(
    '%s: a %s figure on a flat background (%ix%i) gives its shape (IoU > %d)',
    async (quality, pose, width, height, minIoU) => {
      const figure = renderPersonFigure(width, height, { pose });
      const before = gpu.tensorCount();
      const matte = await segmenter.segment(rgbImage(figure), quality);
      expect(gpu.tensorCount()).toBe(before);

      expect(matte).toMatchObject({
        width,
        height,
        model: PERSON_SEGMENTATION_MODELS[quality],
        version: '1',
        backend: gpu.backendName,
      });
      // (Lengths, not the arrays: a failure would print millions of bytes.)
      expect(matte.alpha.length).toBe(width * height);
      const iou = maskIoU(matte.alpha, figure.truth);
      ious[`${quality}/${pose}/${width}x${height}`] = Number(iou.toFixed(3));
      expect(iou).toBeGreaterThan(minIoU);
      expect(matte.foregroundFraction).toBeCloseTo(figure.coverage, 1);
      // The background corners are cut away.
      for (const [x, y] of [
        [0, 0],
        [width - 1, 0],
        [0, height - 1],
        [width - 1, height - 1],
      ])
        expect(matte.alpha[y * width + x]).toBeLessThan(20);
    },
  );

  it('best keeps no state between images: the same image twice gives the same matte, and sizes may change', async () => {
    const a = renderPersonFigure(320, 480);
    const b = renderPersonFigure(200, 160, { pose: 'portrait' });
    const first = await segmenter.segment(rgbImage(a), 'best');
    const other = await segmenter.segment(rgbImage(b), 'best');
    const again = await segmenter.segment(rgbImage(a), 'best');
    expect(other.alpha.length).toBe(200 * 160);
    expect(Buffer.compare(Buffer.from(again.alpha), Buffer.from(first.alpha))).toBe(0);
  });

  it('scales large inputs down for the network and the matte back up to full size', async () => {
    const figure = renderPersonFigure(1200, 1500);
    const matte = await segmenter.segment(rgbImage(figure), 'best');
    expect(matte.networkResolution).toBe('819x1024');
    expect(matte.alpha.length).toBe(1200 * 1500);
    const iou = maskIoU(matte.alpha, figure.truth);
    ious['best/standing_relaxed/1200x1500'] = Number(iou.toFixed(3));
    expect(iou).toBeGreaterThan(0.95);
    // Scaled smoothly: the edge has intermediate values, not a 2-level staircase.
    const soft = matte.alpha.filter((v) => v > 20 && v < 235).length;
    expect(soft).toBeGreaterThan(1000);
  });

  it('a photo of a person: both networks find the same person, torso and face opaque, corners clear', async () => {
    const photo = await humanBodySample();
    const fast = await segmenter.segment(photo, 'fast');
    const best = await segmenter.segment(photo, 'best');
    const bestMask = Uint8Array.from(best.alpha, (v) => (v > 127 ? 1 : 0));
    const agreement = maskIoU(fast.alpha, bestMask);
    ious['fast-vs-best/photo'] = Number(agreement.toFixed(3));
    expect(agreement).toBeGreaterThan(0.8);
    const w = photo.width;
    for (const m of [fast, best]) {
      // Dress (chest) and face of the sample; corners of the studio background.
      expect(m.alpha[570 * w + 600]).toBeGreaterThan(200);
      expect(m.alpha[110 * w + 585]).toBeGreaterThan(200);
      expect(m.alpha[20 * w + 20]).toBeLessThan(20);
      expect(m.alpha[(photo.height - 20) * w + (w - 20)]).toBeLessThan(20);
      expect(m.foregroundFraction).toBeGreaterThan(0.08);
      expect(m.foregroundFraction).toBeLessThan(0.3);
    }
  });

  it('flattens transparent pixels before segmenting; applyMatte never makes a pixel more opaque', async () => {
    const figure = renderPersonFigure(240, 360);
    const rgba = Buffer.alloc(240 * 360 * 4);
    for (let i = 0; i < 240 * 360; i++) {
      figure.rgb.copy(rgba, i * 4, i * 3, i * 3 + 3);
      // The left quarter is transparent.
      rgba[i * 4 + 3] = i % 240 < 60 ? 0 : 255;
    }
    const matte = await segmenter.segment(
      { data: rgba, width: 240, height: 360, channels: 4 },
      'best',
    );
    const cut = Buffer.from(rgba);
    const fraction = applyMatte(cut, matte.alpha);
    for (let i = 0; i < 240 * 360; i++) expect(cut[i * 4 + 3]).toBeLessThanOrEqual(rgba[i * 4 + 3]);
    expect(cut[(180 * 240 + 30) * 4 + 3]).toBe(0);
    expect(cut[(180 * 240 + 120) * 4 + 3]).toBeGreaterThan(200);
    expect(fraction).toBeGreaterThan(0.05);
  });

  it('stops on an aborted signal', async () => {
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    await expect(
      segmenter.segment(rgbImage(renderPersonFigure(64, 64)), 'fast', controller.signal),
    ).rejects.toThrow('cancelled');
  });
});
