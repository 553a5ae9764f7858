import { BullModule } from '@nestjs/bullmq';
import { Module } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { NetModule } from '@app/net';
import { RedisClientFactory } from '@app/redis';
import { CancelBus } from './cancel/cancel-bus';
import { BULL_PREFIX_PART, TaskQueueService } from './queue/task-queue.service';
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
      inject: [AppConfig, RedisClientFactory],
      useFactory: (config: AppConfig, connections: RedisClientFactory) => ({
        connection: connections.bullConnection(),
        prefix: `${config.redis.prefix}:${BULL_PREFIX_PART}`,
      }),
    }),
    BullModule.registerQueue(...ALL_QUEUES.map((name) => ({ name }))),
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
