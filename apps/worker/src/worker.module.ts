import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { AppConfig, ConfigModule } from '@app/config';
import { GpuModule } from '@app/gpu';
import { PayloadModule } from '@app/payload';
import { LoggingModule } from '@app/observability';
import { RedisModule } from '@app/redis';
import { StorageModule } from '@app/storage';
import { TaskReconciler, TaskRetentionSweeper, TasksModule, type QueueName } from '@app/tasks';
import { WebhooksModule } from '@app/webhooks';
import { WorkersModule } from '@app/workers';
import { WORKER_OPERATIONS_PROVIDERS } from './health/worker-health.server';
import { WorkerHeartbeatService } from './heartbeat/worker-heartbeat.service';
import { PROCESSOR_MODULES } from './processors';
import { CancelWatcher } from './runtime/cancel-watcher';
import { EventLoopWatch } from './runtime/event-loop.watch';
import { ProcessorRegistry } from './runtime/processor.registry';
import { queueConsumer } from './runtime/queue-consumer';
import { TaskEvents } from './runtime/task-events';
import { RunOutput } from './runtime/run-output';
import { SafetyModule } from './safety/safety.module';
import { TaskRunner } from './runtime/task-runner';
import { WorkerShutdownService } from './runtime/worker-shutdown.service';

/** The worker: consumers of the queues in WORKER_QUEUES, the runner and every processor. */
@Module({})
export class WorkerModule {
  static register(config: AppConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ConfigModule.forRoot(config),
        RedisModule,
        DiscoveryModule,
        TasksModule,
        StorageModule,
        GpuModule,
        PayloadModule,
        WebhooksModule,
        WorkersModule,
        LoggingModule.forRoot(config, 'worker'),
        TerminusModule.forRoot({ gracefulShutdownTimeoutMs: 0 }),
        SafetyModule,
        ...PROCESSOR_MODULES,
      ],
      providers: [
        ProcessorRegistry,
        RunOutput,
        TaskRunner,
        TaskEvents,
        CancelWatcher,
        TaskReconciler,
        TaskRetentionSweeper,
        WorkerShutdownService,
        EventLoopWatch,
        WorkerHeartbeatService,
        ...WORKER_OPERATIONS_PROVIDERS,
        ...config.worker.queues.map((q) => queueConsumer(q as QueueName, config)),
      ],
      exports: [TaskRunner, ProcessorRegistry, TaskEvents, WorkerShutdownService],
    };
  }
}
