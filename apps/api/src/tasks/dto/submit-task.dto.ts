import { ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';
import {
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MaxLength,
} from 'class-validator';
import { PROJECT_ID_PATTERN, PROJECT_ID_RULE } from '@app/projects';
import { TASK_DEFINITIONS, type TaskPriority } from '@app/tasks';

const TASK_TYPES = TASK_DEFINITIONS.map((d) => d.type);

export class SubmitTaskDto {
  @ApiProperty({ example: 'detective_series_001', pattern: PROJECT_ID_PATTERN.source })
  @IsString()
  @Matches(PROJECT_ID_PATTERN, { message: `project_id must be ${PROJECT_ID_RULE}` })
  project_id!: string;

  // Checked against the registered definitions by the lifecycle (400 names the known types).
  @ApiProperty({ enum: TASK_TYPES, example: 'generate_image' })
  @IsString()
  @MaxLength(64)
  task_type!: string;

  @ApiProperty({
    description: 'Parameters of the task type (see the schema named after it).',
    oneOf: TASK_DEFINITIONS.map((d) => ({ $ref: getSchemaPath(d.dataClass) })),
  })
  @IsObject()
  task_data!: Record<string, unknown>;

  @ApiPropertyOptional({
    enum: [1, 2, 3],
    default: 2,
    description: '1 = high, 2 = normal, 3 = low',
  })
  // A JSON number: "1" is refused, not converted (the body is JSON; only query strings convert).
  @IsOptional()
  @IsInt()
  @IsIn([1, 2, 3], { message: 'priority must be 1, 2 or 3' })
  priority?: TaskPriority;

  @ApiPropertyOptional({ example: 'https://main-app.com/api/webhooks/task-complete' })
  @IsOptional()
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false })
  @MaxLength(2048)
  callback_url?: string;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: true,
    example: { user_id: 'user123', agent_id: 'character_design_agent' },
  })
  @IsOptional()
  @IsObject()
  metadata?: Record<string, unknown>;
}
