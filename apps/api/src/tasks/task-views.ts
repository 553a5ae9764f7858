import { Injectable } from '@nestjs/common';
import { StorageDriver } from '@app/storage';
import { taskResultView, type TaskRecord } from '@app/tasks';
import type {
  SubmitTaskResponseDto,
  TaskListItemDto,
  TaskStatusResponseDto,
} from './dto/task-responses.dto';

/** Turns task records into the wire shapes of DESIGN §4; media URLs are made at read time. */
@Injectable()
export class TaskViews {
  constructor(private readonly storage: StorageDriver) {}

  submitted(task: TaskRecord): SubmitTaskResponseDto {
    return {
      task_id: task.task_id,
      status: task.status,
      project_id: task.project_id,
      estimated_duration: task.estimated_duration,
      queue_position: task.queue_position,
      created_at: task.created_at,
    };
  }

  async status(task: TaskRecord): Promise<TaskStatusResponseDto> {
    return {
      task_id: task.task_id,
      project_id: task.project_id,
      status: task.status,
      progress: task.progress,
      current_step: task.current_step,
      result: await taskResultView(task.result, this.storage),
      error: task.error,
      error_class: task.error_class,
      next_retry_at: task.status === 'queued' ? task.next_retry_at : null,
      attempts: task.attempts,
      started_at: task.started_at,
      completed_at: task.completed_at,
      webhook: task.webhook && {
        event: task.webhook.event,
        state: task.webhook.state,
        attempts: task.webhook.attempts,
        last_status: task.webhook.last_status,
        delivered_at: task.webhook.delivered_at,
        next_attempt_at: task.webhook.next_attempt_at,
        last_error: task.webhook.last_error,
      },
    };
  }

  async listItem(task: TaskRecord): Promise<TaskListItemDto> {
    return {
      task_id: task.task_id,
      task_type: task.task_type,
      status: task.status,
      created_at: task.created_at,
      completed_at: task.completed_at,
      result_url: (await taskResultView(task.result, this.storage))?.media_url ?? null,
    };
  }
}
