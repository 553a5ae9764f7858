import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  ArrayMinSize,
  IsArray,
  IsBoolean,
  IsNumber,
  IsOptional,
  Max,
  Min,
} from 'class-validator';
import { QueueName } from '../../queues';
import { IsInputUrl } from '../input-url.validator';
import type { TaskDefinition } from '../task-definition';

/**
 * What analyze_character does when `task_data` leaves a field out (or sends null).
 *
 * `match_threshold` is on the cosine similarity of two FaceRes 1024-d embeddings. Measured on
 * the wasm backend with Human 3.3.6: one face re-framed, flipped or rescaled scores 0.89–0.99;
 * the same character with its face 10× smaller 0.64; different people 0.25–0.60. 0.7 says "same
 * face" with few false matches; lower it for small or side-on faces.
 */
export const ANALYZE_CHARACTER_DEFAULTS = {
  include_embeddings: false,
  match_threshold: 0.7,
} as const;

/** Most images of one request, and most references. */
export const ANALYZE_CHARACTER_LIMITS = { images: 16, references: 8 } as const;

/**
 * `task_data` of analyze_character. A property's initializer is its default (validateTaskData
 * fills it in when the input leaves it out or sends null); Swagger's `default` names the same
 * constant.
 */
export class AnalyzeCharacterTaskData {
  @ApiProperty({
    description:
      'Images to analyze (http(s) or s3:// URLs): faces (box, landmarks, age, gender, emotion, ' +
      'embedding digest), body pose, and consistency against the references.',
    type: [String],
    minItems: 1,
    maxItems: ANALYZE_CHARACTER_LIMITS.images,
    example: ['https://example.com/detective_shot1.jpg', 'https://example.com/detective_shot2.jpg'],
  })
  @IsArray()
  @ArrayMinSize(1)
  @ArrayMaxSize(ANALYZE_CHARACTER_LIMITS.images)
  @IsInputUrl({ each: true })
  image_urls!: string[];

  @ApiPropertyOptional({
    description:
      'The character as it should look (http(s) or s3:// URLs). Each image is compared with the ' +
      "best face of every reference; without references, with the first image's best face.",
    type: [String],
    maxItems: ANALYZE_CHARACTER_LIMITS.references,
    example: ['https://example.com/detective_character_sheet.jpg'],
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(ANALYZE_CHARACTER_LIMITS.references)
  @IsInputUrl({ each: true })
  reference_images?: string[];

  @ApiPropertyOptional({
    description:
      'Put the 1024-d face embeddings themselves in the JSON result (each face always carries ' +
      'a sha256 digest of it).',
    default: ANALYZE_CHARACTER_DEFAULTS.include_embeddings,
  })
  @IsOptional()
  @IsBoolean()
  include_embeddings: boolean = ANALYZE_CHARACTER_DEFAULTS.include_embeddings;

  @ApiPropertyOptional({
    description:
      'Cosine similarity of face embeddings at or above which an image `matches` its ' +
      'references (same face re-framed: 0.89–0.99; different people: 0.25–0.60).',
    minimum: 0,
    maximum: 1,
    default: ANALYZE_CHARACTER_DEFAULTS.match_threshold,
  })
  @IsOptional()
  @IsNumber({ allowNaN: false, allowInfinity: false })
  @Min(0)
  @Max(1)
  match_threshold: number = ANALYZE_CHARACTER_DEFAULTS.match_threshold;
}

export const ANALYZE_CHARACTER_TASK: TaskDefinition<AnalyzeCharacterTaskData> = {
  type: 'analyze_character',
  description:
    'Character consistency report (JSON): faces, landmarks, age, gender, emotion, face ' +
    'embeddings and body pose per image, similarity to reference faces.',
  queue: QueueName.GpuMedium,
  mediaKind: 'analysis',
  dataClass: AnalyzeCharacterTaskData,
  estimateDuration(data) {
    // Measured on the wasm backend (2 cores): ~0.4–0.6 s per image for the face and body
    // networks plus its fetch and decode.
    const images = data.image_urls.length + (data.reference_images?.length ?? 0);
    return Math.max(2, Math.round(1 + 0.8 * images));
  },
};
