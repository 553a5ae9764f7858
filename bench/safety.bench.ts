import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { AppConfig } from '@app/config';
import { defaultModelSources, GpuService, ModelRepository, NSFW_MODEL } from '@app/gpu';
import { SafetyClassifier } from '../apps/worker/src/safety/safety.classifier';
import { type BenchRow, fmt } from './common';

/** Rounds per figure; the median is reported (the machine is shared). */
const ROUNDS = 7;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Distinct 1024² JPEGs (the default generate_image output size): noise, blurred so it encodes like a picture. */
async function images(count: number): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      sharp({
        create: {
          width: 1024,
          height: 1024,
          channels: 3,
          background: { r: 0, g: 0, b: 0 },
          noise: { type: 'gaussian', mean: 100 + i * 10, sigma: 50 },
        },
      })
        .blur(2)
        .jpeg({ quality: 90 })
        .toBuffer(),
    ),
  );
}

/**
 * The safety check's cost per image on the tfjs backend that runs here: the whole `classify()` a
 * task pays (sharp decode of a 1024² JPEG, bilinear resize to 224², MobileNetV2) at batch 1 and
 * batch 8, and the part inside `LoadedModel.infer` alone (resize to 224² and the network; what
 * `model_inference_seconds` observes).
 */
export async function safetyBenchRows(): Promise<BenchRow[]> {
  Logger.overrideLogger(['error']);
  const config = AppConfig.fromEnv({ API_KEYS: 'bench', MODELS_DIR: '/nonexistent' });
  const gpu = new GpuService(config);
  await gpu.init();
  const models = new ModelRepository(config, gpu, defaultModelSources(config));
  const classifier = new SafetyClassifier(gpu, models);
  const inference: number[] = [];
  models.onEvent((e) => {
    if (e.type === 'inference') inference.push(e.seconds * 1000);
  });
  const t0 = performance.now();
  await models.preload([NSFW_MODEL]);
  const loadMs = performance.now() - t0;
  const backend = gpu.backendName;
  const pictures = await images(8);
  await classifier.classify(pictures.slice(0, 1)); // first inference outside the figures

  const perImage = async (batch: number) => {
    const wall: number[] = [];
    const infer: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      inference.length = 0;
      const t = performance.now();
      await classifier.classify(pictures.slice(0, batch));
      wall.push((performance.now() - t) / batch);
      infer.push(inference.reduce((a, b) => a + b, 0) / batch);
    }
    return { wall: median(wall), infer: median(infer) };
  };
  const one = await perImage(1);
  const eight = await perImage(8);
  const tensors = gpu.tensorCount();
  await classifier.classify(pictures);
  const leaked = gpu.tensorCount() - tensors;
  models.onModuleDestroy();
  Logger.overrideLogger(new Logger());

  const row = (metric: string, value: string): BenchRow => ({ part: 'safety', metric, value });
  return [
    row(`${NSFW_MODEL} load + warm-up (${backend})`, `${fmt(loadMs, 0)} ms`),
    row(
      `safety check per 1024² JPEG, batch 1 (${backend}, incl. decode)`,
      `${fmt(one.wall, 1)} ms`,
    ),
    row(
      `safety check per 1024² JPEG, batch 8 (${backend}, incl. decode)`,
      `${fmt(eight.wall, 1)} ms`,
    ),
    row(`${NSFW_MODEL} inference per image, batch 1 (${backend})`, `${fmt(one.infer, 1)} ms`),
    row(`${NSFW_MODEL} inference per image, batch 8 (${backend})`, `${fmt(eight.infer, 1)} ms`),
    row('tensors left after a batch of 8', String(leaked)),
  ];
}
