import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsIn,
  IsOptional,
  IsString,
  Length,
  MaxLength,
} from 'class-validator';
import { QueueName } from '../../queues';
import { IsInputUrl } from '../input-url.validator';
import type { TaskDefinition } from '../task-definition';
import { parseResolution, videoTiming, VideoOutputOptions } from './video-output.options';

/** Camera moves the generator knows; any other string is accepted, recorded, and shot wide. */
export const CAMERA_PRESETS = [
  'wide_shot',
  'medium_shot',
  'close_up',
  'pan_left',
  'pan_right',
  'tilt_up',
  'dolly_in',
  'dolly_out',
  'tracking_shot',
] as const;
export type CameraPreset = (typeof CAMERA_PRESETS)[number];

/** Light grades the generator knows; any other string is accepted, recorded, and graded natural. */
export const VIDEO_LIGHTING_PRESETS = [
  'natural',
  'noir_dramatic',
  'golden_hour',
  'night',
  'high_key',
] as const;
export type VideoLightingPreset = (typeof VIDEO_LIGHTING_PRESETS)[number];

/**
 * What the camera centres on: `positions`, the words of `character_positions`; `faces`, the
 * faces found in each storyboard frame (human-face-body), `positions` for a frame without one.
 */
export const VIDEO_FRAMINGS = ['positions', 'faces'] as const;
export type VideoFraming = (typeof VIDEO_FRAMINGS)[number];

/** What generate_video does when `task_data` leaves a field out (or sends null). */
export const GENERATE_VIDEO_DEFAULTS = {
  camera_angle: 'wide_shot',
  lighting: 'natural',
  framing: 'positions',
} as const satisfies {
  camera_angle: CameraPreset;
  lighting: VideoLightingPreset;
  framing: VideoFraming;
};

/**
 * `task_data` of generate_video. A property's initializer is its default (validateTaskData fills
 * it in when the input leaves it out or sends null); Swagger's `default` names the same constant.
 */
export class GenerateVideoTaskData extends VideoOutputOptions {
  @ApiProperty({
    description:
      'Storyboard frames (http(s) or s3:// image URLs), shown in order as shots with crossfades.',
    type: [String],
    minItems: 1,
    maxItems: 24,
    example: ['https://example.com/frame1.jpg', 'https://example.com/frame2.jpg'],
  })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(24)
  @IsInputUrl({ each: true })
  storyboard_images!: string[];

  @ApiProperty({
    description: 'What happens in the scene; recorded with the result and seeds the sound bed.',
    example: 'Detective enters the dark alley',
    minLength: 1,
    maxLength: 2000,
  })
  @IsString()
  @Length(1, 2000)
  scene_description!: string;

  @ApiPropertyOptional({
    description: `Camera move; known presets: ${CAMERA_PRESETS.join(', ')}.`,
    example: 'wide_shot',
    default: GENERATE_VIDEO_DEFAULTS.camera_angle,
    maxLength: 100,
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  camera_angle: string = GENERATE_VIDEO_DEFAULTS.camera_angle;

  @ApiPropertyOptional({
    description:
      'What the camera move centres on: `positions` (character_positions words) or `faces` ' +
      '(the faces detected in each storyboard frame; a frame without a face falls back to ' +
      'positions, and result.metadata says which).',
    enum: VIDEO_FRAMINGS,
    default: GENERATE_VIDEO_DEFAULTS.framing,
  })
  @IsOptional()
  @IsIn(VIDEO_FRAMINGS)
  framing: VideoFraming = GENERATE_VIDEO_DEFAULTS.framing;

  @ApiPropertyOptional({
    description: `Light grade; known presets: ${VIDEO_LIGHTING_PRESETS.join(', ')}.`,
    example: 'noir_dramatic',
    default: GENERATE_VIDEO_DEFAULTS.lighting,
    maxLength: 100,
  })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  lighting: string = GENERATE_VIDEO_DEFAULTS.lighting;

  @ApiPropertyOptional({
    description:
      'Where the characters stand, e.g. "detective_center"; left/center/right (and top/bottom) ' +
      'words steer the framing of close and medium shots and tracking.',
    type: [String],
    maxItems: 16,
    example: ['detective_center'],
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  @MaxLength(100, { each: true })
  character_positions?: string[];

  @ApiPropertyOptional({
    description:
      'Sound cues. Known ambiences (rain_ambience, footsteps, wind, city_night, crowd, room_tone, ' +
      'forest) are synthesized into an AAC track; others are ignored and listed in the result.',
    type: [String],
    maxItems: 16,
    example: ['footsteps', 'rain_ambience'],
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  @MaxLength(100, { each: true })
  audio_cues?: string[];
}

export const GENERATE_VIDEO_TASK: TaskDefinition<GenerateVideoTaskData> = {
  type: 'generate_video',
  description: 'Video segment (MP4) from storyboard frames, camera move, light grade and ambience.',
  queue: QueueName.GpuHeavy,
  mediaKind: 'video',
  dataClass: GenerateVideoTaskData,
  estimateDuration(data) {
    // Measured on the wasm backend (2 cores): ~0.1 s per 1080p frame, linear in pixels (the
    // default 7 s video takes 17–18 s); each storyboard frame costs a fetch and a decode.
    const { width, height } = parseResolution(data.resolution);
    const { frames } = videoTiming(data.duration, data.fps);
    const perFrame = 0.1 * ((width * height) / (1920 * 1080));
    // Face framing runs the face networks once per storyboard frame (~0.5 s each).
    const perShot = data.framing === 'faces' ? 0.9 : 0.4;
    return Math.max(3, Math.round(2 + perShot * data.storyboard_images.length + frames * perFrame));
  },
};
