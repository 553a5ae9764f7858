import { ApiProperty } from '@nestjs/swagger';
import {
  TASK_STATUSES,
  type TaskStatus,
  type WebhookDeliveryState,
  type WebhookEventName,
} from '@app/tasks';

export class SubmitTaskResponseDto {
  @ApiProperty({ format: 'uuid' }) task_id!: string;
  @ApiProperty({ enum: ['queued'] }) status!: TaskStatus;
  @ApiProperty() project_id!: string;
  @ApiProperty({ description: 'Seconds a typical run takes' }) estimated_duration!: number;
  @ApiProperty({
    description: 'Rank among the waiting jobs of its queue (1 = next); 0 = already started',
  })
  queue_position!: number;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
}

export class TaskResultDto {
  @ApiProperty({
    type: String,
    nullable: true,
    description:
      'Where the output can be downloaded (signed, expires); null once media retention ' +
      '(MEDIA_RETENTION_DAYS) deleted it',
  })
  media_url!: string | null;
  @ApiProperty({ nullable: true, type: String }) payload_media_id!: string | null;
  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    example: {
      resolution: '1024x1024',
      file_size: 182734,
      format: 'JPEG',
      seed: 42,
      backend: 'wasm',
    },
  })
  metadata!: Record<string, unknown>;
  @ApiProperty({
    required: false,
    format: 'date-time',
    description: 'When media retention deleted the output (absent while it is kept)',
  })
  media_deleted_at?: string;
}

export class TaskWebhookDto {
  @ApiProperty({ enum: ['task.completed', 'task.failed', 'task.cancelled'] })
  event!: WebhookEventName;
  @ApiProperty({
    enum: ['pending', 'delivered', 'failed'],
    description: 'pending: not yet delivered, attempts left; failed: given up',
  })
  state!: WebhookDeliveryState;
  @ApiProperty({ description: 'POSTs made so far' }) attempts!: number;
  @ApiProperty({ type: Number, nullable: true, description: 'HTTP status of the last attempt' })
  last_status!: number | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) delivered_at!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true })
  next_attempt_at!: string | null;
  @ApiProperty({ type: String, nullable: true, example: 'HTTP 500' }) last_error!: string | null;
}

export class TaskStatusResponseDto {
  @ApiProperty({ format: 'uuid' }) task_id!: string;
  @ApiProperty() project_id!: string;
  @ApiProperty({ enum: TASK_STATUSES }) status!: TaskStatus;
  @ApiProperty({ minimum: 0, maximum: 1 }) progress!: number;
  @ApiProperty({ example: 'generating_image' }) current_step!: string;
  @ApiProperty({ type: TaskResultDto, nullable: true }) result!: TaskResultDto | null;
  @ApiProperty({ type: String, nullable: true }) error!: string | null;
  @ApiProperty({
    type: String,
    nullable: true,
    example: 'network',
    description:
      'Class of the last failed attempt (network, gpu_memory, rate_limit, default, validation, ' +
      'filesystem, timeout, content_blocked); each class has its own retry budget (RETRY_LIMITS); ' +
      'content_blocked (an image above SAFETY_BLOCK_THRESHOLD) is never retried',
  })
  error_class!: string | null;
  @ApiProperty({
    type: String,
    format: 'date-time',
    nullable: true,
    description: 'When the automatic retry that is waiting now is due',
  })
  next_retry_at!: string | null;
  @ApiProperty({
    example: 1,
    description: 'Runs of this submission so far (automatic retries count)',
  })
  attempts!: number;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) started_at!: string | null;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) completed_at!: string | null;
  @ApiProperty({
    type: TaskWebhookDto,
    nullable: true,
    description: 'Delivery of the webhook for how the task ended; null without callback_url',
  })
  webhook!: TaskWebhookDto | null;
}

export class TaskListItemDto {
  @ApiProperty({ format: 'uuid' }) task_id!: string;
  @ApiProperty() task_type!: string;
  @ApiProperty({ enum: TASK_STATUSES }) status!: TaskStatus;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) completed_at!: string | null;
  @ApiProperty({ type: String, nullable: true }) result_url!: string | null;
}

export class PaginationDto {
  @ApiProperty() page!: number;
  @ApiProperty() limit!: number;
  @ApiProperty() total!: number;
  @ApiProperty() total_pages!: number;
}

export class TaskListResponseDto {
  @ApiProperty({ type: [TaskListItemDto] }) tasks!: TaskListItemDto[];
  @ApiProperty({ type: PaginationDto }) pagination!: PaginationDto;
}

export class ErrorResponseDto {
  @ApiProperty({ example: 400 }) statusCode!: number;
  @ApiProperty({ example: 'Bad Request' }) error!: string;
  @ApiProperty({
    oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
    example: ['task_data.width must not be greater than 2048'],
  })
  message!: string | string[];
}
