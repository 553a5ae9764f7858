import { Module } from '@nestjs/common';
import { WorkerStatusRepository } from './worker-status.repository';

/**
 * Worker heartbeats (seed 001 WorkerStatus): written by workers, read by the API's workers status
 * and health. Uses the global Redis connection and config.
 */
@Module({
  providers: [WorkerStatusRepository],
  exports: [WorkerStatusRepository],
})
export class WorkersModule {}
