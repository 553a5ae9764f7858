import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsOptional } from 'class-validator';

/**
 * `safety_check` of every image-producing task type: when true the worker runs the image safety
 * classifier (nsfw-mobilenet-v2) on the input images and on the output, and puts the scores in
 * `result.metadata.safety`. With SAFETY_BLOCK_THRESHOLD set, an output scoring above it fails the
 * task with the non-retryable `content_blocked` error and is not stored.
 */
export function SafetyCheckField(): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({
      description:
        'Run the image safety classifier on input images and the output; scores go in ' +
        'result.metadata.safety. With SAFETY_BLOCK_THRESHOLD set, an output above it fails the ' +
        'task with content_blocked and is not stored.',
      default: false,
    }),
    IsOptional(),
    IsBoolean(),
  );
}
