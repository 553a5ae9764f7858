import {
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Res,
  UseGuards,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiResponse,
  ApiSecurity,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiTooManyRequestsResponse,
  ApiUnauthorizedResponse,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import {
  TASK_DEFINITIONS,
  TaskLifecycleService,
  type ProjectScope,
  type SubmitTaskInput,
} from '@app/tasks';
import type { FastifyReply } from 'fastify';
import { Scope } from '../auth/principal.decorator';
import { assertProjectInScope } from '../auth/project-scope';
import { SubmitThrottlerGuard } from '../rate-limit/submit-throttler.guard';
import { SubmitTaskDto } from './dto/submit-task.dto';
import {
  ErrorResponseDto,
  SubmitTaskResponseDto,
  TaskStatusResponseDto,
} from './dto/task-responses.dto';
import {
  IDEMPOTENCY_KEY_HEADER,
  IDEMPOTENT_REPLAYED_HEADER,
  IdempotencyService,
} from './idempotency.service';
import { TaskViews } from './task-views';

const uuid = new ParseUUIDPipe({
  exceptionFactory: () => new BadRequestException(['task_id must be a UUID']),
});

@ApiTags('tasks')
@ApiSecurity('api-key')
@ApiExtraModels(...TASK_DEFINITIONS.map((d) => d.dataClass))
@ApiUnauthorizedResponse({ type: ErrorResponseDto, description: 'X-API-Key missing or invalid' })
@Controller('tasks')
export class TasksController {
  constructor(
    private readonly lifecycle: TaskLifecycleService,
    private readonly views: TaskViews,
    private readonly idempotency: IdempotencyService,
  ) {}

  @Post('submit')
  @UseGuards(SubmitThrottlerGuard)
  @ApiOperation({
    summary: 'Submit a task; it is queued and runs on a worker of its queue',
    description:
      'With an `Idempotency-Key` header (1 to 255 printable ASCII characters, per project, ' +
      'remembered for IDEMPOTENCY_TTL), a repeat of the same request answers the original ' +
      'response again (same task_id, 201, header `Idempotent-Replayed: true`) instead of ' +
      'creating a second task. Submits are rate-limited per API key (RATE_LIMIT_SUBMIT per ' +
      'RATE_LIMIT_WINDOW_SECONDS).',
  })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Makes the submit safe to repeat: 1 to 255 printable ASCII characters',
  })
  @ApiCreatedResponse({
    type: SubmitTaskResponseDto,
    description:
      'Queued; or, for a repeated Idempotency-Key, the original response with ' +
      '`Idempotent-Replayed: true`',
  })
  @ApiBadRequestResponse({
    type: ErrorResponseDto,
    description: 'A field (or the Idempotency-Key header) is invalid; the message names it',
  })
  @ApiNotFoundResponse({
    type: ErrorResponseDto,
    description: 'The API key is limited to other projects (existence is not revealed)',
  })
  @ApiConflictResponse({
    type: ErrorResponseDto,
    description: 'A request with the same Idempotency-Key is still being processed',
  })
  @ApiResponse({
    status: 413,
    type: ErrorResponseDto,
    description: 'The body is larger than API_BODY_LIMIT',
  })
  @ApiUnprocessableEntityResponse({
    type: ErrorResponseDto,
    description: 'The Idempotency-Key was used before with a different body',
  })
  @ApiTooManyRequestsResponse({
    type: ErrorResponseDto,
    description: 'Rate limit of the API key reached (Retry-After, X-RateLimit-* headers)',
  })
  @ApiServiceUnavailableResponse({
    type: ErrorResponseDto,
    description: 'The queue is full (Retry-After)',
  })
  async submit(
    @Scope() scope: ProjectScope,
    @Body() body: SubmitTaskDto,
    @Headers(IDEMPOTENCY_KEY_HEADER) idempotencyHeader: string | string[] | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<SubmitTaskResponseDto> {
    const key = this.idempotency.parseKey(idempotencyHeader);
    assertProjectInScope(scope, body.project_id);
    const input: SubmitTaskInput = {
      project_id: body.project_id,
      task_type: body.task_type,
      task_data: body.task_data,
      priority: body.priority ?? 2,
      callback_url: body.callback_url ?? null,
      metadata: body.metadata ?? null,
    };
    if (key === undefined) return this.views.submitted(await this.lifecycle.submit(input));

    const claim = await this.idempotency.claim(
      input.project_id,
      key,
      IdempotencyService.fingerprint(input),
    );
    if (claim.kind === 'replay') {
      // The original response: the record's fields with the status and position it had then.
      const task = await this.lifecycle.get(scope, claim.taskId);
      void reply.status(claim.status).header(IDEMPOTENT_REPLAYED_HEADER, 'true');
      return this.views.submitted({
        ...task,
        status: 'queued',
        queue_position: claim.queuePosition,
      });
    }
    try {
      return this.views.submitted(
        await this.lifecycle.submit(input, this.idempotency.completion(claim.reservation)),
      );
    } catch (err) {
      await this.idempotency.release(claim.reservation);
      throw err;
    }
  }

  @Get(':task_id/status')
  @ApiOperation({ summary: 'Status, progress and result of a task' })
  @ApiOkResponse({ type: TaskStatusResponseDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'task_id is not a UUID' })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  async status(
    @Scope() scope: ProjectScope,
    @Param('task_id', uuid) taskId: string,
  ): Promise<TaskStatusResponseDto> {
    return this.views.status(await this.lifecycle.get(scope, taskId));
  }

  @Delete(':task_id/cancel')
  @ApiOperation({ summary: 'Cancel a queued or processing task (a running processor is stopped)' })
  @ApiOkResponse({ type: TaskStatusResponseDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  @ApiConflictResponse({ type: ErrorResponseDto, description: 'The task already ended' })
  async cancel(
    @Scope() scope: ProjectScope,
    @Param('task_id', uuid) taskId: string,
  ): Promise<TaskStatusResponseDto> {
    return this.views.status(await this.lifecycle.cancel(scope, taskId));
  }

  @Post(':task_id/retry')
  @HttpCode(200)
  @UseGuards(SubmitThrottlerGuard)
  @ApiOperation({ summary: 'Queue a failed or cancelled task again with the same parameters' })
  @ApiOkResponse({ type: SubmitTaskResponseDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  @ApiConflictResponse({
    type: ErrorResponseDto,
    description: 'The task is not failed or cancelled',
  })
  @ApiTooManyRequestsResponse({
    type: ErrorResponseDto,
    description: 'Rate limit of the API key reached (a retry counts as a submit)',
  })
  @ApiServiceUnavailableResponse({
    type: ErrorResponseDto,
    description: 'The queue is full (Retry-After)',
  })
  async retry(
    @Scope() scope: ProjectScope,
    @Param('task_id', uuid) taskId: string,
  ): Promise<SubmitTaskResponseDto> {
    return this.views.submitted(await this.lifecycle.retry(scope, taskId));
  }
}
