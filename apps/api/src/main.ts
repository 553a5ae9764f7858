import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppConfig, loadDotEnv } from '@app/config';
import { createAppLogger } from '@app/observability';
import { ApiModule } from './api.module';
import { apiDrainSeconds } from './common/http-drain';
import { createApiAdapter, setupApp } from './setup-app';

async function bootstrap(): Promise<void> {
  loadDotEnv();
  const config = AppConfig.fromEnv();
  const app = await NestFactory.create<NestFastifyApplication>(
    ApiModule.register(config),
    createApiAdapter(config),
    { logger: createAppLogger(config, 'api') },
  );
  setupApp(app, config);
  await app.listen(config.api.port, config.api.host);
  const logger = new Logger('Api');
  // HttpDrain bounds the wait for requests; this bounds the rest (Redis, queues) of a shutdown.
  const hardStopMs = (apiDrainSeconds(config) + 10) * 1000;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      setTimeout(() => {
        logger.error(`shutdown did not finish within ${hardStopMs / 1000} s; exiting`);
        process.exit(1);
      }, hardStopMs).unref();
    });
  }
  logger.log(`API listening on http://${config.api.host}:${config.api.port}/api/v1`);
  if (config.api.swagger) logger.log(`Swagger UI at ${config.api.publicBaseUrl}/docs`);
}

bootstrap().catch((err: Error) => {
  new Logger('Api').fatal(err.message);
  process.exit(1);
});
