import { Module } from '@nestjs/common';
import { ModelCatalogRepository } from './model-catalog.repository';
import { WorkerStatusRepository } from './worker-status.repository';

/**
 * Worker heartbeats (seed 001 WorkerStatus): written by workers, read by the API's workers status
 * and health. Uses the global Redis connection and config.
 */
@Module({
  providers: [WorkerStatusRepository, ModelCatalogRepository],
  exports: [WorkerStatusRepository, ModelCatalogRepository],
})
export class WorkersModule {}
