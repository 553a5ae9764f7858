import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { NetModule } from '@app/net';
import { RedisClientFactory } from '@app/redis';
import { CancelBus } from './cancel/cancel-bus';
import { bullPrefix, TaskQueueService } from './queue/task-queue.service';
import { ALL_QUEUES } from './queues';
import { TaskRepository } from './records/task.repository';
import { TaskStateMachine } from './records/task-state.machine';
import { TaskLifecycleService } from './task-lifecycle.service';
import { EXTRA_TASK_DEFINITIONS, TaskDefinitions } from './task-types/task-definitions';

/**
 * Task records, contracts, the queue producer and the lifecycle; shared by api and worker. Worker
 * heartbeats live in @app/workers.
 */
@Module({
  imports: [
    NetModule,
    BullModule.forRootAsync({
      inject: [RedisClientFactory],
      useFactory: (connections: RedisClientFactory) => ({
        connection: connections.bullConnection(),
      }),
    }),
    // Each queue under its own hash-tagged prefix (bullPrefix); its workers take the queue's.
    BullModule.registerQueueAsync(
      ...ALL_QUEUES.map((name) => ({
        name,
        inject: [AppConfig],
        useFactory: (config: AppConfig) => ({ prefix: bullPrefix(config.redis.prefix, name) }),
      })),
    ),
  ],
  providers: [
    { provide: EXTRA_TASK_DEFINITIONS, useValue: [] },
    TaskRepository,
    TaskStateMachine,
    TaskQueueService,
    TaskDefinitions,
    CancelBus,
    TaskLifecycleService,
  ],
  exports: [
    BullModule,
    TaskRepository,
    TaskStateMachine,
    TaskQueueService,
    TaskDefinitions,
    CancelBus,
    TaskLifecycleService,
  ],
})
export class TasksModule {}
