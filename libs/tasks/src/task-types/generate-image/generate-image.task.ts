import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsArray,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { QueueName } from '../../queues';
import { IsInputUrl } from '../input-url.validator';
import { SafetyCheckField } from '../safety-check.option';
import type { TaskDefinition } from '../task-definition';

export const IMAGE_FORMATS = ['jpeg', 'png', 'webp'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** Lighting presets the generator knows; any other string is accepted and recorded but neutral. */
export const IMAGE_LIGHTING_PRESETS = [
  'natural',
  'dramatic_shadow',
  'noir_dramatic',
  'golden_hour',
  'night',
  'high_key',
  'low_key',
  'backlit',
  'neon',
] as const;

/** Pose presets the generator knows; any other string is accepted and recorded but neutral. */
export const IMAGE_POSE_PRESETS = [
  'standing_confident',
  'standing_relaxed',
  'sitting',
  'walking',
  'running',
  'portrait',
  'action',
] as const;

/** Factors generate_image may render below the requested size by, then super-resolve. */
export const GENERATE_IMAGE_UPSCALES = [2, 3, 4] as const;

/** What generate_image does when `task_data` leaves a field out (or sends null). */
export const GENERATE_IMAGE_DEFAULTS = { width: 1024, height: 1024, format: 'jpeg' } as const;

/**
 * `task_data` of generate_image. A property's initializer is its default (validateTaskData fills
 * it in when the input leaves it out or sends null); Swagger's `default` names the same constant.
 */
export class GenerateImageTaskData {
  @ApiProperty({
    description: 'What the character looks like; the image is conditioned on it.',
    example: 'Detective in 1920s noir style',
    minLength: 1,
    maxLength: 2000,
  })
  @IsString()
  @Length(1, 2000)
  character_description!: string;

  @ApiPropertyOptional({
    description: 'URL of a style-guide image (http/https); its palette is transferred.',
    example: 'https://example.com/noir_style_guide.jpg',
  })
  @IsOptional()
  @IsInputUrl()
  style_guide?: string;

  @ApiPropertyOptional({
    description: 'Up to 8 reference image URLs (http/https); their colours steer the palette.',
    type: [String],
    maxItems: 8,
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(8)
  @IsInputUrl({ each: true })
  reference_images?: string[];

  @ApiPropertyOptional({
    description: `Pose; known presets (${IMAGE_POSE_PRESETS.join(', ')}) shape the figure.`,
    example: 'standing_confident',
    maxLength: 100,
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  pose?: string;

  @ApiPropertyOptional({
    description: `Lighting; known presets (${IMAGE_LIGHTING_PRESETS.join(', ')}) grade the image.`,
    example: 'dramatic_shadow',
    maxLength: 100,
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  lighting?: string;

  @ApiPropertyOptional({ minimum: 64, maximum: 2048, default: GENERATE_IMAGE_DEFAULTS.width })
  @IsOptional()
  @IsInt()
  @Min(64)
  @Max(2048)
  width: number = GENERATE_IMAGE_DEFAULTS.width;

  @ApiPropertyOptional({ minimum: 64, maximum: 2048, default: GENERATE_IMAGE_DEFAULTS.height })
  @IsOptional()
  @IsInt()
  @Min(64)
  @Max(2048)
  height: number = GENERATE_IMAGE_DEFAULTS.height;

  @ApiPropertyOptional({
    description: 'Same inputs and seed give the same image. Derived from the inputs when absent.',
    minimum: 0,
    maximum: 2 ** 31 - 1,
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(2 ** 31 - 1)
  seed?: number;

  @ApiPropertyOptional({ enum: IMAGE_FORMATS, default: GENERATE_IMAGE_DEFAULTS.format })
  @IsOptional()
  @IsIn(IMAGE_FORMATS)
  format: ImageFormat = GENERATE_IMAGE_DEFAULTS.format;

  // The initializer is the default SafetyCheckField's Swagger schema names (false).
  @SafetyCheckField()
  safety_check: boolean = false;
  @ApiPropertyOptional({
    description:
      'Render at width/upscale × height/upscale and super-resolve to the requested size with ' +
      'ESRGAN slim (the network of upscale_image quality fast); result.metadata names it ' +
      '(upscaled_by, upscale_model). Absent: rendered at full size.',
    enum: GENERATE_IMAGE_UPSCALES,
  })
  @IsOptional()
  @IsIn(GENERATE_IMAGE_UPSCALES)
  upscale?: (typeof GENERATE_IMAGE_UPSCALES)[number];
}

export const GENERATE_IMAGE_TASK: TaskDefinition<GenerateImageTaskData> = {
  type: 'generate_image',
  description: 'Character design image from a description, style guide and references.',
  queue: QueueName.GpuMedium,
  mediaKind: 'image',
  dataClass: GenerateImageTaskData,
  estimateDuration(data) {
    // Cost grows with the pixel count; remote inputs add fetch time. With `upscale` the
    // generator draws 1/upscale² of the pixels and ESRGAN slim (~35 s per input megapixel on
    // wasm) makes up the rest.
    const factor = data.upscale ?? 1;
    const megapixels = (data.width * data.height) / 1_048_576 / factor ** 2;
    const fetches = (data.style_guide ? 1 : 0) + (data.reference_images?.length ?? 0);
    const upscaling = factor > 1 ? 35 * megapixels : 0;
    return Math.max(5, Math.round(20 * megapixels + upscaling + 2 * fetches));
  },
};
