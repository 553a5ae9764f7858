import { Controller, Get } from '@nestjs/common';
import {
  ApiForbiddenResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { WorkerStatusRepository } from '@app/workers';
import { UnscopedKeyOnly } from '../auth/public.decorator';
import { ErrorResponseDto } from '../tasks/dto/task-responses.dto';
import { WorkersStatusResponseDto } from './workers-status.dto';

@ApiTags('workers')
@ApiSecurity('api-key')
@ApiUnauthorizedResponse({ type: ErrorResponseDto })
@ApiForbiddenResponse({
  type: ErrorResponseDto,
  description: 'The API key is limited to projects; workers show tasks of every project',
})
@UnscopedKeyOnly()
@Controller('workers')
export class WorkersController {
  constructor(private readonly workers: WorkerStatusRepository) {}

  @Get('status')
  @ApiOperation({
    summary: 'Workers that sent a heartbeat within the last 5 minutes (seed 004 scenario 5)',
    // (offline: silent for three heartbeat intervals; busy/active/idle: as the worker reported)
    description: 'Needs an API key that is not limited to projects (403 otherwise).',
  })
  @ApiOkResponse({ type: WorkersStatusResponseDto })
  async status(): Promise<WorkersStatusResponseDto> {
    const workers = await this.workers.list();
    const online = workers.filter((w) => w.status !== 'offline');
    const gpu = online.map((w) => w.gpu_utilization);
    return {
      workers: workers.map((w) => ({
        worker_id: w.worker_id,
        worker_type: w.worker_type,
        status: w.status,
        current_task_id: w.current_task_id,
        gpu_utilization: w.gpu_utilization,
        memory_usage: w.memory_usage,
        tasks_completed: w.tasks_completed,
        last_heartbeat: w.last_heartbeat,
        backend: w.backend,
        device: w.device,
        gpus: w.gpus,
      })),
      total_workers: workers.length,
      active_workers: workers.filter((w) => w.status === 'active' || w.status === 'busy').length,
      offline_workers: workers.length - online.length,
      gpu_utilization: gpu.length ? gpu.reduce((a, b) => a + b, 0) / gpu.length : 0,
    };
  }
}
