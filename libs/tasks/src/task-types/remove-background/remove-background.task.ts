import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { QueueName } from '../../queues';
import { IsInputUrl } from '../input-url.validator';
import { SafetyCheckField } from '../safety-check.option';
import type { TaskDefinition } from '../task-definition';

/**
 * Which person segmentation network cuts the person out: `fast` is MediaPipe Selfie (a 256×256
 * soft mask scaled up to the image), `best` is Robust Video Matting (a matte refined at up to
 * 1024 px on the long side, hair and fingers kept).
 */
export const SEGMENTATION_QUALITIES = ['fast', 'best'] as const;
export type SegmentationQuality = (typeof SEGMENTATION_QUALITIES)[number];

/** Output encodings that keep an alpha channel. */
export const CUTOUT_FORMATS = ['png', 'webp'] as const;
export type CutoutFormat = (typeof CUTOUT_FORMATS)[number];

/** What remove_background does when `task_data` leaves a field out (or sends null). */
export const REMOVE_BACKGROUND_DEFAULTS = {
  quality: 'best',
  format: 'png',
} as const satisfies { quality: SegmentationQuality; format: CutoutFormat };

/**
 * `task_data` of remove_background. A property's initializer is its default (validateTaskData
 * fills it in when the input leaves it out or sends null); Swagger's `default` names the same
 * constant.
 */
export class RemoveBackgroundTaskData {
  @ApiProperty({
    description:
      'The image (http(s) or s3:// URL of the project) with a person in it. Existing ' +
      'transparency is kept (the cut-out is never more opaque than the input).',
    example: 'https://example.com/actor.jpg',
  })
  @IsInputUrl()
  image_url!: string;

  @ApiPropertyOptional({
    enum: SEGMENTATION_QUALITIES,
    default: REMOVE_BACKGROUND_DEFAULTS.quality,
    description:
      'fast: MediaPipe Selfie (a 256×256 mask scaled to the image; ~0.1 s for 1080p on the ' +
      'wasm backend); best: Robust Video Matting (a soft matte refined at up to 1024 px on the ' +
      'long side; ~1.6 s for 1080p on wasm).',
  })
  @IsOptional()
  @IsIn(SEGMENTATION_QUALITIES)
  quality: SegmentationQuality = REMOVE_BACKGROUND_DEFAULTS.quality;

  @ApiPropertyOptional({
    enum: CUTOUT_FORMATS,
    default: REMOVE_BACKGROUND_DEFAULTS.format,
    description: 'Both keep the alpha channel (WebP: lossy colour, lossless-quality alpha).',
  })
  @IsOptional()
  @IsIn(CUTOUT_FORMATS)
  format: CutoutFormat = REMOVE_BACKGROUND_DEFAULTS.format;

  // The initializer matches the Swagger default SafetyCheckField declares (task-defaults.spec).
  @SafetyCheckField()
  safety_check?: boolean = false;
}

export const REMOVE_BACKGROUND_TASK: TaskDefinition<RemoveBackgroundTaskData> = {
  type: 'remove_background',
  description: 'Person cut-out: the image with its background made transparent (PNG/WebP).',
  queue: QueueName.GpuMedium,
  mediaKind: 'image',
  dataClass: RemoveBackgroundTaskData,
  estimateDuration(data) {
    // The input's size is unknown at submit: a 1080p photo on the wasm backend (2 cores), with
    // fetch, decode and PNG encoding (see bench/segmentation.bench.ts).
    return data.quality === 'fast' ? 3 : 6;
  },
};
