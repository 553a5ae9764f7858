import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import sharp, { type SharpOptions } from 'sharp';
import { AppConfig, ConfigModule } from '@app/config';
import { GpuService } from '@app/gpu';
import { ANALYZE_CHARACTER_TASK, validateTaskData } from '@app/tasks';
import { TestFileServer, TestSigningKeysModule } from '@app/testing';
import { FaceAnalyzer } from '../apps/worker/src/media/faces/face.analyzer';
import { AnalyzeCharacterModule } from '../apps/worker/src/processors/analyze-character/analyze-character.module';
import { AnalyzeCharacterProcessor } from '../apps/worker/src/processors/analyze-character/analyze-character.processor';
import type { RunningTask } from '../apps/worker/src/runtime/task-processor';
import { type BenchRow, fmt, latencySummary, withTimeout } from './common';

/** Images per timed task (the per-image figure is the task's time over this). */
const IMAGES_PER_TASK = 8;
const TASK_TIMEOUT_MS = 240_000;

const FACE = readFileSync(path.join(__dirname, '../apps/worker/test/fixtures/faces/face.jpg'));

/** A photo-like frame of `width`×`height` with the fixture face in it (a third of its height). */
async function frameWithFace(width: number, height: number): Promise<Buffer> {
  const side = Math.round(height / 3);
  const backdrop = await sharp({
    create: { width, height, channels: 3, noise: { type: 'gaussian', mean: 110, sigma: 40 } },
  } as SharpOptions)
    .png()
    .toBuffer();
  return sharp(backdrop)
    .blur(3)
    .composite([
      {
        input: await sharp(FACE).resize(side, side).toBuffer(),
        left: Math.round(width * 0.55),
        top: Math.round(height * 0.2),
      },
    ])
    .jpeg({ quality: 90 })
    .toBuffer();
}

/**
 * analyze_character: ms per image through the whole processor (fetch over loopback HTTP, decode,
 * face and body networks, report) at 640×480 and 1024×1024, and the networks alone.
 */
export async function characterBenchRows(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const files = new TestFileServer();
  const sizes = [
    { width: 640, height: 480 },
    { width: 1024, height: 1024 },
  ];
  for (const { width, height } of sizes) {
    const body = await frameWithFace(width, height);
    for (let i = 0; i < IMAGES_PER_TASK; i++) {
      // Distinct URLs: the processor analyzes a repeated URL only once.
      files.set(`/${width}x${height}-${i}.jpg`, { body, contentType: 'image/jpeg' });
    }
  }
  const base = await files.start();
  Logger.overrideLogger(['fatal', 'error']);
  const moduleRef = await Test.createTestingModule({
    imports: [
      ConfigModule.forRoot(
        AppConfig.fromEnv({
          API_KEYS: 'bench-key',
          TFJS_BACKEND: process.env.TFJS_BACKEND ?? 'auto',
          LOG_LEVEL: 'error',
          ALLOW_PRIVATE_URLS: 'true',
        }),
      ),
      TestSigningKeysModule,
      AnalyzeCharacterModule,
    ],
  }).compile();
  moduleRef.useLogger(['fatal', 'error']);
  await moduleRef.init();
  try {
    const processor = moduleRef.get(AnalyzeCharacterProcessor);
    const analyzer = moduleRef.get(FaceAnalyzer);
    const gpu = moduleRef.get(GpuService);
    await gpu.init();
    const backend = gpu.backendName;
    const run = (urls: string[]) => {
      const task: RunningTask<ReturnType<typeof data>> = {
        taskId: `bench-character-${Date.now()}`,
        projectId: 'bench',
        taskType: ANALYZE_CHARACTER_TASK.type,
        attempt: 1,
        data: data(urls),
        signal: new AbortController().signal,
        progress: () => Promise.resolve(),
      };
      return withTimeout(processor.process(task), TASK_TIMEOUT_MS, 'analyze_character');
    };
    const data = (urls: string[]) =>
      validateTaskData(ANALYZE_CHARACTER_TASK, { image_urls: urls, reference_images: [urls[0]] });

    for (const { width, height } of sizes) {
      // Load and warm the model, and the kernels of this input size, outside the figures.
      await run([`${base}/${width}x${height}-0.jpg`]);
      const urls = Array.from(
        { length: IMAGES_PER_TASK },
        (_, i) => `${base}/${width}x${height}-${i}.jpg`,
      );
      const t0 = performance.now();
      const out = await run(urls);
      const ms = (performance.now() - t0) / IMAGES_PER_TASK;
      const faces = (out.metadata.faces_per_image as number[]).join(',');
      rows.push({
        part: 'character',
        metric: `analyze_character per image ${width}×${height} (${backend}, task of ${IMAGES_PER_TASK}; faces ${faces})`,
        value: `${fmt(ms, 0)} ms`,
      });

      // The networks alone on the decoded image (what model_inference_seconds sees).
      const image = await FaceAnalyzer.decode(
        await frameWithFace(width, height),
        'bench',
        `${width}x${height}`,
      );
      const times = await analyzer.use(async (analyze) => {
        const ms: number[] = [];
        for (let i = 0; i < 5; i++) ms.push((await analyze(image)).inference_ms);
        return ms;
      });
      rows.push({
        part: 'character',
        metric: `human-face-body inference ${width}×${height} (${backend}, p50 of 5)`,
        value: `${fmt(latencySummary(times).p50, 0)} ms`,
      });
    }
  } finally {
    await moduleRef.close();
    await files.stop();
  }
  return rows;
}

if (require.main === module) {
  characterBenchRows().then(
    (rows) => {
      for (const r of rows) process.stdout.write(`${r.metric}: ${r.value}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`${String(err)}\n`);
      process.exit(1);
    },
  );
}
