import {
  BadRequestException,
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
} from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { TASK_DEFINITIONS, TaskLifecycleService, type ProjectScope } from '@app/tasks';
import { Scope } from '../auth/principal.decorator';
import { SubmitTaskDto } from './dto/submit-task.dto';
import {
  ErrorResponseDto,
  SubmitTaskResponseDto,
  TaskStatusResponseDto,
} from './dto/task-responses.dto';
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
  ) {}

  @Post('submit')
  @ApiOperation({ summary: 'Submit a task; it is queued and runs on a worker of its queue' })
  @ApiCreatedResponse({ type: SubmitTaskResponseDto })
  @ApiBadRequestResponse({
    type: ErrorResponseDto,
    description: 'A field is invalid; the message names it',
  })
  @ApiServiceUnavailableResponse({
    type: ErrorResponseDto,
    description: 'The queue is full (Retry-After)',
  })
  async submit(@Body() body: SubmitTaskDto): Promise<SubmitTaskResponseDto> {
    const task = await this.lifecycle.submit({
      project_id: body.project_id,
      task_type: body.task_type,
      task_data: body.task_data,
      priority: body.priority ?? 2,
      callback_url: body.callback_url ?? null,
      metadata: body.metadata ?? null,
    });
    return this.views.submitted(task);
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
  @ApiOperation({ summary: 'Queue a failed or cancelled task again with the same parameters' })
  @ApiOkResponse({ type: SubmitTaskResponseDto })
  @ApiNotFoundResponse({ type: ErrorResponseDto })
  @ApiConflictResponse({
    type: ErrorResponseDto,
    description: 'The task is not failed or cancelled',
  })
  async retry(
    @Scope() scope: ProjectScope,
    @Param('task_id', uuid) taskId: string,
  ): Promise<SubmitTaskResponseDto> {
    return this.views.submitted(await this.lifecycle.retry(scope, taskId));
  }
}
