import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { QueueName } from '../../queues';
import { IMAGE_FORMATS, type ImageFormat } from '../generate-image/generate-image.task';
import { IsInputUrl } from '../input-url.validator';
import { SafetyCheckField } from '../safety-check.option';
import type { TaskDefinition } from '../task-definition';

/** Super-resolution factors: ESRGAN ships one trained network per factor. */
export const UPSCALE_SCALES = [2, 3, 4] as const;
export type UpscaleScale = (typeof UPSCALE_SCALES)[number];

/** fast, balanced, best = ESRGAN slim, medium, thick (sharper and slower in that order). */
export const UPSCALE_QUALITIES = ['fast', 'balanced', 'best'] as const;
export type UpscaleQuality = (typeof UPSCALE_QUALITIES)[number];

/** What upscale_image does when `task_data` leaves a field out (or sends null). */
export const UPSCALE_IMAGE_DEFAULTS = {
  scale: 4,
  quality: 'balanced',
  format: 'jpeg',
} as const satisfies { scale: UpscaleScale; quality: UpscaleQuality; format: ImageFormat };

/**
 * Seconds per input megapixel on the wasm backend (one thread, a 2-core machine under load 3–6),
 * tiles and their overlap included. Measured ×4 512² → 2048²: fast 10 s, balanced 31 s, best
 * 361 s; ×2 and ×3 from per-tile timings (medium ×2/×3 are heavier networks than medium ×4 and
 * use smaller tiles). The cost follows the input's pixels.
 */
export const UPSCALE_SECONDS_PER_INPUT_MEGAPIXEL: Record<
  UpscaleQuality,
  Record<UpscaleScale, number>
> = {
  fast: { 2: 35, 3: 45, 4: 40 },
  balanced: { 2: 130, 3: 150, 4: 115 },
  best: { 2: 1300, 3: 1300, 4: 1300 },
};

/**
 * `task_data` of upscale_image: super-resolution of one image by a trained ESRGAN network, in
 * overlapping tiles. The output (input × scale) may be at most IMAGE_MAX_PIXELS; the worker
 * checks that from the input's header and fails the task (no retry) when it is larger.
 */
export class UpscaleImageTaskData {
  @ApiProperty({
    description:
      'The image to upscale: an http(s) URL, or an s3://bucket/key reference inside the project.',
    example: 'https://example.com/storyboard_frame.png',
  })
  @IsInputUrl()
  image_url!: string;

  @ApiPropertyOptional({
    description: 'Factor of both sides; the output has (width × scale) × (height × scale) pixels.',
    enum: UPSCALE_SCALES,
    default: UPSCALE_IMAGE_DEFAULTS.scale,
  })
  @IsOptional()
  @IsIn(UPSCALE_SCALES)
  scale: UpscaleScale = UPSCALE_IMAGE_DEFAULTS.scale;

  @ApiPropertyOptional({
    description:
      'Network size: fast = ESRGAN slim, balanced = ESRGAN medium, best = ESRGAN thick (RRDN, ' +
      'sharpest, about ten times slower than balanced).',
    enum: UPSCALE_QUALITIES,
    default: UPSCALE_IMAGE_DEFAULTS.quality,
  })
  @IsOptional()
  @IsIn(UPSCALE_QUALITIES)
  quality: UpscaleQuality = UPSCALE_IMAGE_DEFAULTS.quality;

  @ApiPropertyOptional({ enum: IMAGE_FORMATS, default: UPSCALE_IMAGE_DEFAULTS.format })
  @IsOptional()
  @IsIn(IMAGE_FORMATS)
  format: ImageFormat = UPSCALE_IMAGE_DEFAULTS.format;

  @SafetyCheckField()
  safety_check: boolean = false;
}

export const UPSCALE_IMAGE_TASK: TaskDefinition<UpscaleImageTaskData> = {
  type: 'upscale_image',
  description: 'Super-resolution of an image ×2, ×3 or ×4 by a trained ESRGAN network.',
  queue: QueueName.GpuMedium,
  mediaKind: 'image',
  dataClass: UpscaleImageTaskData,
  estimateDuration(data) {
    // The input's size is unknown at submit: assume a 512×512 frame, plus its fetch.
    const inputMegapixels = (512 * 512) / 1_000_000;
    const seconds = UPSCALE_SECONDS_PER_INPUT_MEGAPIXEL[data.quality][data.scale] * inputMegapixels;
    return Math.max(5, Math.round(seconds + 2));
  },
};
