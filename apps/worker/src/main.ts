import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppConfig, loadDotEnv } from '@app/config';
import { createAppLogger } from '@app/observability';
import { WorkerShutdownService } from './runtime/worker-shutdown.service';
import { WorkerModule } from './worker.module';

async function bootstrap(): Promise<void> {
  loadDotEnv();
  const config = AppConfig.fromEnv();
  const app = await NestFactory.createApplicationContext(WorkerModule.register(config), {
    logger: createAppLogger(config, 'worker'),
  });
  // SIGTERM/SIGINT: stop fetching, let running tasks finish (SHUTDOWN_GRACE), hand back the rest.
  app.get(WorkerShutdownService).handleSignals(app);
  new Logger('Worker').log(
    `worker ${config.worker.id} up; queues ${config.worker.queues.join(', ')}`,
  );
}

bootstrap().catch((err: Error) => {
  new Logger('Worker').fatal(err.message);
  process.exit(1);
});
