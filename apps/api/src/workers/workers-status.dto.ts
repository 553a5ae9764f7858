import { ApiProperty } from '@nestjs/swagger';
import { ALL_QUEUES } from '@app/tasks';
import { WORKER_STATUSES, type WorkerStatus } from '@app/workers';

export class WorkerGpuDto {
  @ApiProperty({ example: '0' }) gpu_id!: string;
  @ApiProperty({ example: 'NVIDIA L4' }) name!: string;
  @ApiProperty({ description: 'bytes' }) memory_used_bytes!: number;
  @ApiProperty({ description: 'bytes' }) memory_total_bytes!: number;
  @ApiProperty({ minimum: 0, maximum: 100 }) utilization_percent!: number;
}

export class WorkerStatusDto {
  @ApiProperty() worker_id!: string;
  @ApiProperty({
    enum: ALL_QUEUES,
    isArray: true,
    example: ['gpu_heavy'],
    description: 'The queues the worker serves, each one of seed 001’s worker types',
  })
  worker_type!: string[];
  @ApiProperty({
    enum: WORKER_STATUSES,
    description:
      'busy: every slot runs a task; active: some do; idle: none; offline: no heartbeat for ' +
      'three of its intervals (its record lasts 5 minutes)',
  })
  status!: WorkerStatus;
  @ApiProperty({ type: String, nullable: true }) current_task_id!: string | null;
  @ApiProperty({ minimum: 0, maximum: 1 }) gpu_utilization!: number;
  @ApiProperty({ description: 'bytes' }) memory_usage!: number;
  @ApiProperty() tasks_completed!: number;
  @ApiProperty({ format: 'date-time' }) last_heartbeat!: string;
  @ApiProperty({ example: 'wasm', description: 'tfjs backend' }) backend!: string;
  @ApiProperty({
    enum: ['gpu', 'cpu'],
    description: 'gpu only when tensors run on a CUDA device (tfjs-node-gpu)',
  })
  device!: 'gpu' | 'cpu';
  @ApiProperty({ type: [WorkerGpuDto], description: 'From nvidia-smi; empty without a GPU' })
  gpus!: WorkerGpuDto[];
}

export class WorkersStatusResponseDto {
  @ApiProperty({ type: [WorkerStatusDto] }) workers!: WorkerStatusDto[];
  @ApiProperty({ description: 'Workers with a heartbeat in the last 5 minutes, offline included' })
  total_workers!: number;
  @ApiProperty({ description: 'Workers running tasks (active or busy)' }) active_workers!: number;
  @ApiProperty({ description: 'Workers not heard from for three heartbeat intervals' })
  offline_workers!: number;
  @ApiProperty({ minimum: 0, maximum: 1, description: 'Mean over the workers not offline' })
  gpu_utilization!: number;
}
