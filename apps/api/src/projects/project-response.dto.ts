import { ApiProperty } from '@nestjs/swagger';

/** A project record (seed 001 "Project"), kept by the task scripts as tasks come and go. */
export class ProjectResponseDto {
  @ApiProperty({ example: 'detective_series_001' }) project_id!: string;
  @ApiProperty({ example: 'detective_series_001' }) project_name!: string;
  @ApiProperty({ description: 'Tasks ever submitted to the project.', example: 12 })
  task_count!: number;
  @ApiProperty({ description: 'Tasks processing now.', example: 1 }) active_tasks!: number;
  @ApiProperty({ description: 'Tasks queued or processing.', example: 3 }) pending_tasks!: number;
  @ApiProperty({ example: 'projects/detective_series_001/' }) storage_prefix!: string;
  @ApiProperty({ description: 'When its first task was submitted.' }) created_at!: string;
  @ApiProperty({ description: 'When one of its tasks last changed status.' })
  last_activity!: string;
}
