import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { defaultModelSources, GpuService, ModelRepository } from '@app/gpu';
import type { SegmentationQuality } from '@app/tasks';
import {
  PERSON_SEGMENTATION_MODELS,
  PersonSegmenter,
} from '../apps/worker/src/media/segmentation/person.segmenter';
import { renderPersonFigure } from '../apps/worker/test/support/person.figure';
import { type BenchRow, fmt, withTimeout } from './common';

/** Timed runs per network after one untimed run (the median is reported). */
const RUNS = 5;

/**
 * Person segmentation of one 1920×1080 frame (a figure on a flat background) with each network, as
 * remove_background and render_animation run it: scale to the network's input (sharp), inference
 * (tfjs), mask scaled back to 1080p (sharp). Median of RUNS; the network's own share in brackets.
 */
export async function segmentationBenchRows(): Promise<BenchRow[]> {
  Logger.overrideLogger(['error']);
  const config = AppConfig.fromEnv({ API_KEYS: 'bench', TFJS_BACKEND: 'auto' });
  const gpu = new GpuService(config);
  await gpu.init();
  const models = new ModelRepository(config, gpu, defaultModelSources(config));
  const segmenter = new PersonSegmenter(gpu, models);
  const frame = renderPersonFigure(1920, 1080, { pose: 'walking' });
  const image = { data: frame.rgb, width: 1920, height: 1080, channels: 3 as const };
  const rows: BenchRow[] = [];
  try {
    for (const quality of ['fast', 'best'] as const satisfies readonly SegmentationQuality[]) {
      const name = PERSON_SEGMENTATION_MODELS[quality];
      await models.preload([name]);
      await segmenter.segment(image, quality);
      const total: number[] = [];
      const network: number[] = [];
      let resolution = '';
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        const matte = await withTimeout(segmenter.segment(image, quality), 120_000, name);
        total.push(performance.now() - t0);
        network.push(matte.inferenceMs);
        resolution = matte.networkResolution;
      }
      rows.push({
        part: 'segmentation',
        metric: `person matte of a 1920×1080 frame, ${name} (${quality}; network sees ${resolution}; ${gpu.backendName})`,
        value: `${fmt(median(total), 0)} ms (network ${fmt(median(network), 0)} ms)`,
      });
    }
  } finally {
    models.onModuleDestroy();
  }
  return rows;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
