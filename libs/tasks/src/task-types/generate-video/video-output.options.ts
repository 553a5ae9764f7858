import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsNumber, IsOptional, Max, Min, ValidateBy } from 'class-validator';

/** Output limits shared by every task type that renders an MP4 (video, animation). */
export const VIDEO_OUTPUT = {
  defaultResolution: '1920x1080',
  defaultDuration: 7,
  defaultFps: 24,
  minDuration: 1,
  maxDuration: 30,
  minFps: 12,
  maxFps: 60,
  minSide: 64,
  maxSide: 3840,
  /** 3840x2160 (landscape or portrait). */
  maxPixels: 3840 * 2160,
} as const;

export interface VideoSize {
  width: number;
  height: number;
}

const RESOLUTION = /^(\d{1,5})x(\d{1,5})$/;

/** Why `value` is not a usable output resolution, or undefined when it is. */
export function resolutionProblem(value: unknown): string | undefined {
  const m = typeof value === 'string' ? RESOLUTION.exec(value) : null;
  if (!m) return 'must be WIDTHxHEIGHT, e.g. 1920x1080';
  const width = Number(m[1]);
  const height = Number(m[2]);
  const { minSide, maxSide, maxPixels } = VIDEO_OUTPUT;
  if (width % 2 !== 0 || height % 2 !== 0) return 'must have even width and height (H.264 4:2:0)';
  if (Math.min(width, height) < minSide || Math.max(width, height) > maxSide) {
    return `must have sides between ${minSide} and ${maxSide} pixels`;
  }
  if (width * height > maxPixels) return 'must be at most 3840x2160 pixels';
  return undefined;
}

/** `1920x1080` → {width, height}; throws on a value the contract would refuse. */
export function parseResolution(resolution: string): VideoSize {
  const problem = resolutionProblem(resolution);
  if (problem) throw new RangeError(`resolution ${problem}`);
  const [width, height] = resolution.split('x').map(Number);
  return { width, height };
}

/** The frame grid of an output: the duration is rounded to whole frames. */
export interface VideoTiming {
  fps: number;
  frames: number;
  /** frames / fps: what the file really lasts. */
  duration: number;
}

export function videoTiming(duration: number, fps: number): VideoTiming {
  const frames = Math.max(1, Math.round(duration * fps));
  return { fps, frames, duration: frames / fps };
}

function IsVideoResolution(): PropertyDecorator {
  return ValidateBy({
    name: 'isVideoResolution',
    validator: {
      validate: (value: unknown) => resolutionProblem(value) === undefined,
      defaultMessage: (args) =>
        `${args?.property ?? 'resolution'} ${resolutionProblem(args?.value)}`,
    },
  });
}

/**
 * `duration`, `fps` and `resolution` of an MP4 output; task data classes extend it. As in every
 * contract, a property's initializer is its default (validateTaskData fills it in when the input
 * leaves it out or sends null) and the Swagger `default` names the same constant.
 */
export class VideoOutputOptions {
  @ApiPropertyOptional({
    description: 'Length in seconds; rounded to whole frames.',
    minimum: VIDEO_OUTPUT.minDuration,
    maximum: VIDEO_OUTPUT.maxDuration,
    default: VIDEO_OUTPUT.defaultDuration,
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(VIDEO_OUTPUT.minDuration)
  @Max(VIDEO_OUTPUT.maxDuration)
  duration: number = VIDEO_OUTPUT.defaultDuration;

  @ApiPropertyOptional({
    description: 'Frames per second.',
    type: 'integer',
    minimum: VIDEO_OUTPUT.minFps,
    maximum: VIDEO_OUTPUT.maxFps,
    default: VIDEO_OUTPUT.defaultFps,
  })
  @IsOptional()
  @IsInt()
  @Min(VIDEO_OUTPUT.minFps)
  @Max(VIDEO_OUTPUT.maxFps)
  fps: number = VIDEO_OUTPUT.defaultFps;

  @ApiPropertyOptional({
    description:
      'WIDTHxHEIGHT, even sides of 64–3840 px, at most 3840x2160 pixels (portrait allowed).',
    example: '1920x1080',
    default: VIDEO_OUTPUT.defaultResolution,
  })
  @IsOptional()
  @IsVideoResolution()
  resolution: string = VIDEO_OUTPUT.defaultResolution;
}
