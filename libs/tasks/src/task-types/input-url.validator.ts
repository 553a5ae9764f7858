import { applyDecorators } from '@nestjs/common';
import { IsUrl, MaxLength } from 'class-validator';

/**
 * A URL of a task input (storyboard frame, reference image, voice profile ...): http or https,
 * at most 2048 characters. Every contract uses this one rule, so tightening it (URL safety,
 * s3:// references into the project's own prefix) changes every task type at once.
 */
export function IsInputUrl(options: { each?: boolean } = {}): PropertyDecorator {
  return applyDecorators(
    IsUrl(
      { protocols: ['http', 'https'], require_protocol: true, require_tld: false },
      { each: options.each, message: ({ property }) => `${property} must be an http(s) URL` },
    ),
    MaxLength(2048, { each: options.each }),
  );
}
