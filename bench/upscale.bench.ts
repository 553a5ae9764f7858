import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AppConfig, ConfigModule } from '@app/config';
import { GpuService, ModelRepository } from '@app/gpu';
import { GENERATE_IMAGE_TASK, validateTaskData, type UpscaleQuality } from '@app/tasks';
import { photoLikeImage, TestSigningKeysModule } from '@app/testing';
import { ImageUpscalerModule } from '../apps/worker/src/media/image/image-upscaler.module';
import { ImageUpscaler, upscaleModelName } from '../apps/worker/src/media/image/image.upscaler';
import { GenerateImageModule } from '../apps/worker/src/processors/generate-image/generate-image.module';
import { GenerateImageProcessor } from '../apps/worker/src/processors/generate-image/generate-image.processor';
import type { RunningTask } from '../apps/worker/src/runtime/task-processor';
import { type BenchRow, fmt } from './common';

/**
 * Input side of each quality's ×4 run. best (ESRGAN thick) at 512² → 2048² took 361 s on wasm
 * here (676 tiles of 24², load 4–7 on 2 cores), over the ~5 min a bench may spend on one figure:
 * it runs on 256² → 1024², a quarter of the pixels (the cost is proportional to them).
 * BENCH_UPSCALE_BEST_SIDE sets another side.
 */
const INPUT_SIDE: Record<UpscaleQuality, number> = {
  fast: 512,
  balanced: 512,
  best: Number(process.env.BENCH_UPSCALE_BEST_SIDE ?? 256),
};

/**
 * The tiled ESRGAN upscaler: ×4 of a photo-like 512² image (2048² out) per quality level, each
 * after a warm-up (the model loaded, its kernels set up), and generate_image at 1024² drawn at
 * full size and with `upscale: 2` (the CPPN draws 512², ESRGAN slim does the rest).
 */
export async function upscaleBenchRows(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  Logger.overrideLogger(['fatal', 'error']);
  const config = AppConfig.fromEnv({
    API_KEYS: 'bench-key',
    TFJS_BACKEND: process.env.TFJS_BACKEND ?? 'auto',
    LOG_LEVEL: 'error',
  });
  const moduleRef = await Test.createTestingModule({
    imports: [
      ConfigModule.forRoot(config),
      TestSigningKeysModule,
      ImageUpscalerModule,
      GenerateImageModule,
    ],
  }).compile();
  moduleRef.useLogger(['fatal', 'error']);
  await moduleRef.init();
  try {
    const gpu = moduleRef.get(GpuService);
    const upscaler = moduleRef.get(ImageUpscaler);
    const models = moduleRef.get(ModelRepository);
    const backend = gpu.backendName;
    for (const quality of ['fast', 'balanced', 'best'] as const) {
      const side = INPUT_SIDE[quality];
      const model = upscaleModelName(quality, 4);
      await models.preload([model]);
      const warm = photoLikeImage(32, 32, 2);
      await upscaler.upscale({ pixels: warm, width: 32, height: 32, scale: 4, quality });
      const image = photoLikeImage(side, side, 1);
      const t0 = performance.now();
      const out = await upscaler.upscale({
        pixels: image,
        width: side,
        height: side,
        scale: 4,
        quality,
      });
      const s = (performance.now() - t0) / 1000;
      const smaller =
        side !== 512 ? `; 512²→2048² takes ~${((512 / side) ** 2).toFixed(0)}× this` : '';
      rows.push({
        part: 'upscale',
        metric:
          `upscale ×4 ${side}²→${side * 4}² ${quality} (${model}, ${out.tiles} tiles of ` +
          `${out.tileSize}², ${backend}${smaller})`,
        value: `${fmt(s)} s`,
      });
    }

    const image = moduleRef.get(GenerateImageProcessor);
    for (const upscale of [undefined, 2] as const) {
      const data = validateTaskData(GENERATE_IMAGE_TASK, {
        character_description: 'Detective in 1920s noir style',
        seed: 1,
        ...(upscale ? { upscale } : {}),
      });
      const task: RunningTask<typeof data> = {
        taskId: `bench-${Date.now()}`,
        projectId: 'bench',
        taskType: 'generate_image',
        attempt: 1,
        data,
        signal: new AbortController().signal,
        progress: () => Promise.resolve(),
      };
      const t0 = performance.now();
      await image.process(task);
      rows.push({
        part: 'upscale',
        metric: upscale
          ? `generate_image 1024² with upscale 2 (CPPN 512² + esrgan-slim-x2, ${backend})`
          : `generate_image 1024² drawn at full size (${backend})`,
        value: `${fmt((performance.now() - t0) / 1000)} s`,
      });
    }
  } finally {
    await moduleRef.close();
  }
  return rows;
}
