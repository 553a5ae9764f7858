import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsNumber,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  ValidateIf,
  ValidateNested,
} from 'class-validator';
import { QueueName } from '../../queues';
import {
  parseResolution,
  videoTiming,
  VideoOutputOptions,
} from '../generate-video/video-output.options';
import { IsInputUrl } from '../input-url.validator';
import {
  SEGMENTATION_QUALITIES,
  type SegmentationQuality,
} from '../remove-background/remove-background.task';
import type { TaskDefinition } from '../task-definition';

export const EASINGS = ['linear', 'ease_in', 'ease_out', 'ease_in_out'] as const;
export type Easing = (typeof EASINGS)[number];

/** `#rgb` or `#rrggbb`. */
export const HEX_COLOUR = /^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/;

const FINITE = { allowNaN: false, allowInfinity: false } as const;

/** What render_animation does when `task_data` leaves a field out (or sends null). */
export const RENDER_ANIMATION_DEFAULTS = {
  background: '#000000',
  easing: 'linear',
  remove_background: false,
  remove_background_quality: 'best',
} as const satisfies {
  background: string;
  easing: Easing;
  remove_background: boolean;
  remove_background_quality: SegmentationQuality;
};

/**
 * A layer's state at one moment. Properties left out keep the value of the previous keyframe
 * (the first keyframe starts from the canvas centre, scale 1, rotation 0, opacity 1).
 */
export class AnimationKeyframe {
  @ApiProperty({ description: 'Seconds from the start.', minimum: 0, maximum: 30, example: 0 })
  @IsNumber(FINITE)
  @Min(0)
  @Max(30)
  time!: number;

  @ApiPropertyOptional({
    description: "Horizontal position of the layer's centre, output pixels from the left edge.",
    example: 960,
  })
  @IsOptional()
  @IsNumber(FINITE)
  @Min(-100_000)
  @Max(100_000)
  x?: number;

  @ApiPropertyOptional({
    description: "Vertical position of the layer's centre, output pixels from the top edge.",
    example: 540,
  })
  @IsOptional()
  @IsNumber(FINITE)
  @Min(-100_000)
  @Max(100_000)
  y?: number;

  @ApiPropertyOptional({
    description: "Size relative to the image's own pixel size (1 = as is).",
    minimum: 0,
    maximum: 100,
    example: 1,
  })
  @IsOptional()
  @IsNumber(FINITE)
  @Min(0)
  @Max(100)
  scale?: number;

  @ApiPropertyOptional({ description: 'Degrees, clockwise.', example: 0 })
  @IsOptional()
  @IsNumber(FINITE)
  @Min(-36_000)
  @Max(36_000)
  rotation?: number;

  @ApiPropertyOptional({ minimum: 0, maximum: 1, example: 1 })
  @IsOptional()
  @IsNumber(FINITE)
  @Min(0)
  @Max(1)
  opacity?: number;
}

export class AnimationLayer {
  @ApiProperty({
    description: 'The layer image (http(s) or s3:// URL); PNG/WebP transparency is kept.',
    example: 'https://example.com/character.png',
  })
  @IsInputUrl()
  image_url!: string;

  @ApiProperty({ type: [AnimationKeyframe], minItems: 1, maxItems: 100 })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(100)
  @ValidateNested({ each: true })
  @Type(() => AnimationKeyframe)
  keyframes!: AnimationKeyframe[];

  @ApiPropertyOptional({
    enum: EASINGS,
    default: RENDER_ANIMATION_DEFAULTS.easing,
    description: 'Curve between keyframes.',
  })
  @IsOptional()
  @IsIn(EASINGS)
  easing: Easing = RENDER_ANIMATION_DEFAULTS.easing;

  @ApiPropertyOptional({
    default: RENDER_ANIMATION_DEFAULTS.remove_background,
    description:
      'Cut the person out of the layer image before compositing: it is segmented once and the ' +
      "matte becomes the layer's alpha (multiplied with its own transparency).",
  })
  @IsOptional()
  @IsBoolean()
  remove_background: boolean = RENDER_ANIMATION_DEFAULTS.remove_background;

  @ApiPropertyOptional({
    enum: SEGMENTATION_QUALITIES,
    default: RENDER_ANIMATION_DEFAULTS.remove_background_quality,
    description:
      'With remove_background: best (Robust Video Matting, soft edges, ~1.5 s per layer on ' +
      "wasm) or fast (MediaPipe Selfie, ~0.1 s). Same networks as remove_background's quality.",
  })
  @IsOptional()
  @IsIn(SEGMENTATION_QUALITIES)
  remove_background_quality: SegmentationQuality =
    RENDER_ANIMATION_DEFAULTS.remove_background_quality;
}

/**
 * `task_data` of render_animation. A property's initializer is its default (validateTaskData
 * fills it in when the input leaves it out or sends null); Swagger's `default` names the same
 * constant.
 */
export class RenderAnimationTaskData extends VideoOutputOptions {
  @ApiProperty({
    description: 'Layers, bottom first; each is placed by its keyframes.',
    type: [AnimationLayer],
    minItems: 1,
    maxItems: 32,
  })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(32)
  @ValidateNested({ each: true })
  @Type(() => AnimationLayer)
  layers!: AnimationLayer[];

  @ApiPropertyOptional({
    description: 'A colour (#rrggbb or #rgb) or an image URL, fitted to cover the frame.',
    example: '#112233',
    default: RENDER_ANIMATION_DEFAULTS.background,
  })
  @IsOptional()
  @IsString()
  // Not a colour: must be an image URL (the '#' check names colours for near-misses).
  @ValidateIf((o: RenderAnimationTaskData) => !HEX_COLOUR.test(String(o.background)))
  @Matches(/^[^#]/, { message: 'background must be a colour like #112233 or an image URL' })
  @IsInputUrl()
  background: string = RENDER_ANIMATION_DEFAULTS.background;
}

export const RENDER_ANIMATION_TASK: TaskDefinition<RenderAnimationTaskData> = {
  type: 'render_animation',
  description: 'Keyframed layer animation (MP4) over a colour or image background.',
  queue: QueueName.GpuHeavy,
  mediaKind: 'animation',
  dataClass: RenderAnimationTaskData,
  estimateDuration(data) {
    // Measured on the wasm backend (2 cores), per 1080p frame: ~0.03 s for background, readback
    // and encoding, plus ~0.025 s per layer of a few hundred pixels (3 layers: 17 s for 7 s).
    const { width, height } = parseResolution(data.resolution);
    const { frames } = videoTiming(data.duration, data.fps);
    const megaFrames = (frames * width * height) / (1920 * 1080);
    const fetches = data.layers.length + (HEX_COLOUR.test(data.background) ? 0 : 1);
    // Each cut-out layer is segmented once (bench/segmentation.bench.ts).
    const cutouts = data.layers
      .filter((l) => l.remove_background)
      .reduce((sum, l) => sum + (l.remove_background_quality === 'fast' ? 0.2 : 1.5), 0);
    return Math.max(
      3,
      Math.round(2 + 0.3 * fetches + cutouts + megaFrames * (0.03 + 0.025 * data.layers.length)),
    );
  },
};
