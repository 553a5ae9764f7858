import path from 'node:path';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import sharp from 'sharp';
import { AppConfig, ConfigModule } from '@app/config';
import { GpuService, ModelRepository, NSFW_CLASSES, NSFW_MODEL, packageRoot } from '@app/gpu';
import { GENERATE_IMAGE_TASK, validateTaskData } from '@app/tasks';
import { TestSigningKeysModule } from '@app/testing';
import { GenerateImageModule } from '../processors/generate-image/generate-image.module';
import { GenerateImageProcessor } from '../processors/generate-image/generate-image.processor';
import { SafetyClassifier, UndecodableImageError, type SafetyScores } from './safety.classifier';
import { SafetyModule } from './safety.module';

/** Real weights (nsfwjs MobileNetV2 from the model repository) on the wasm backend. */
describe('SafetyClassifier', () => {
  let classifier: SafetyClassifier;
  let gpu: GpuService;
  let models: ModelRepository;
  let close: () => Promise<void>;
  const images: Record<'flat' | 'character' | 'flower' | 'crowd', Buffer> = {} as never;

  beforeAll(async () => {
    Logger.overrideLogger(false);
    const moduleRef = await Test.createTestingModule({
      imports: [
        ConfigModule.forRoot(
          AppConfig.fromEnv({
            API_KEYS: 'test-key',
            TFJS_BACKEND: 'auto',
            MODELS_DIR: '/nonexistent',
          }),
        ),
        TestSigningKeysModule,
        SafetyModule,
        GenerateImageModule,
      ],
    }).compile();
    await moduleRef.init();
    classifier = moduleRef.get(SafetyClassifier);
    gpu = moduleRef.get(GpuService);
    models = moduleRef.get(ModelRepository);
    close = () => moduleRef.close();

    images.flat = await sharp({
      create: { width: 300, height: 200, channels: 3, background: { r: 40, g: 90, b: 200 } },
    })
      .png()
      .toBuffer();
    const generated = await moduleRef.get(GenerateImageProcessor).process({
      taskId: 't',
      projectId: 'p',
      taskType: 'generate_image',
      attempt: 1,
      data: validateTaskData(GENERATE_IMAGE_TASK, {
        character_description: 'Detective in 1920s noir style',
        width: 256,
        height: 256,
        seed: 7,
      }),
      signal: new AbortController().signal,
      progress: () => Promise.resolve(),
    });
    if (generated.media.kind !== 'buffer') throw new Error('expected a buffer');
    images.character = generated.media.data;
    // Photographs that ship in installed packages: a flower (256², PNG) and a crowd (1280×1158
    // JPEG, larger than the decode bound: reduced first).
    images.flower = await sharp(
      path.join(packageRoot('@upscalerjs/esrgan-slim')!, 'assets/samples/2x/result.png'),
    ).toBuffer();
    images.crowd = await sharp(
      path.join(packageRoot('@vladmandic/human')!, 'assets/samples.jpg'),
    ).toBuffer();
  });

  afterAll(async () => {
    await close();
    Logger.overrideLogger(new Logger());
  });

  const sum = (s: SafetyScores) => Object.values(s).reduce((a, b) => a + b, 0);

  it('gives the five class probabilities, summing to 1, different per image', async () => {
    const names = ['flat', 'character', 'flower', 'crowd'] as const;
    const { model, results } = await classifier.classify(names.map((n) => images[n]));
    expect(model).toEqual({ model: NSFW_MODEL, version: expect.stringMatching(/^\d+\.\d+/) });
    expect(results).toHaveLength(4);
    for (const { scores, unsafe_score } of results) {
      expect(Object.keys(scores)).toEqual([...NSFW_CLASSES]);
      for (const p of Object.values(scores)) {
        expect(p).toBeGreaterThanOrEqual(0);
        expect(p).toBeLessThanOrEqual(1);
      }
      expect(Math.abs(sum(scores) - 1)).toBeLessThan(1e-3);
      expect(unsafe_score).toBeCloseTo(scores.Porn + scores.Hentai + scores.Sexy, 5);
    }
    // Every pair of images is told apart.
    for (let i = 0; i < results.length; i++)
      for (let j = i + 1; j < results.length; j++) {
        const a = results[i].scores;
        const b = results[j].scores;
        const distance = NSFW_CLASSES.reduce((d, c) => d + Math.abs(a[c] - b[c]), 0);
        expect(distance).toBeGreaterThan(0.01);
      }
    // The flower photograph is, to the model, neutral.
    const flower = results[2].scores;
    expect(Math.max(...Object.values(flower))).toBe(flower.Neutral);
  });

  it('scores an image the same alone and in a batch; chunks past the largest batch size', async () => {
    const order = [images.flower, images.flat, images.character];
    const alone = await Promise.all(
      order.map(async (img) => (await classifier.classify([img])).results[0]),
    );
    // 10 images: a batch of 8, then one of 2 (preferred_batch_sizes [1, 4, 8]).
    const many = [...order, ...order, ...order, images.crowd];
    const { results } = await classifier.classify(many);
    expect(results).toHaveLength(10);
    results.slice(0, 9).forEach((r, i) => {
      for (const c of NSFW_CLASSES) expect(r.scores[c]).toBeCloseTo(alone[i % 3].scores[c], 4);
    });
  });

  it('preprocesses as nsfwjs does: its classify() gives the same probabilities', async () => {
    // nsfwjs 4 on the same engine: tensor in, resizeBilinear(x / 255, 224², alignCorners).
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nsfwjs = require('nsfwjs') as typeof import('nsfwjs');
    const info = jest.spyOn(console, 'info').mockImplementation(() => undefined);
    const reference = await nsfwjs.load('MobileNetV2');
    info.mockRestore();
    try {
      for (const img of [images.flower, images.character]) {
        const { data, info: meta } = await sharp(img)
          .removeAlpha()
          .raw()
          .toBuffer({ resolveWithObject: true });
        const tensor = gpu.tf.tensor3d(new Int32Array(data), [meta.height, meta.width, 3], 'int32');
        const theirs = await reference.classify(tensor, 5);
        tensor.dispose();
        const ours = (await classifier.classify([img])).results[0].scores;
        for (const { className, probability } of theirs)
          expect(ours[className]).toBeCloseTo(probability, 4);
      }
    } finally {
      reference.dispose();
    }
  });

  it('leaves the tensor count where it was', async () => {
    await classifier.classify([images.flat]);
    const baseline = gpu.tensorCount();
    await classifier.classify([images.flat, images.character, images.flower, images.crowd]);
    expect(gpu.tensorCount()).toBe(baseline);
    await expect(classifier.classify([images.flat, Buffer.from('not an image')])).rejects.toThrow(
      UndecodableImageError,
    );
    expect(gpu.tensorCount()).toBe(baseline);
  });

  it('names the image that does not decode, and stops when aborted', async () => {
    const err = await classifier
      .classify([images.flat, Buffer.from('not an image')])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UndecodableImageError);
    expect((err as UndecodableImageError).index).toBe(1);
    const controller = new AbortController();
    controller.abort(new Error('cancelled'));
    await expect(classifier.classify([images.flat], controller.signal)).rejects.toThrow(
      'cancelled',
    );
  });

  it('reads the model through the repository (counted as its inferences)', () => {
    const state = models.states().find((s) => s.name === NSFW_MODEL);
    expect(state).toMatchObject({ state: 'ready', backend: 'wasm' });
    expect(state!.inferences).toBeGreaterThan(0);
  });
});
