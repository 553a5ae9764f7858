import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppConfig, loadDotEnv } from '@app/config';
import { createAppLogger } from '@app/observability';
import { ApiModule } from './api.module';
import { setupApp } from './setup-app';

async function bootstrap(): Promise<void> {
  loadDotEnv();
  const config = AppConfig.fromEnv();
  const app = await NestFactory.create<NestFastifyApplication>(
    ApiModule.register(config),
    new FastifyAdapter({ bodyLimit: 1024 * 1024 }),
    { logger: createAppLogger(config, 'api') },
  );
  setupApp(app, config);
  await app.listen(config.api.port, config.api.host);
  const logger = new Logger('Api');
  logger.log(`API listening on http://${config.api.host}:${config.api.port}/api/v1`);
  if (config.api.swagger) logger.log(`Swagger UI at ${config.api.publicBaseUrl}/docs`);
}

bootstrap().catch((err: Error) => {
  new Logger('Api').fatal(err.message);
  process.exit(1);
});
