import { RequestMethod, ValidationPipe, type INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { AppConfig } from '@app/config';
import { API_KEY_HEADER } from './auth/api-key.guard';

export const API_PREFIX = 'api/v1';

/** Served at the root, as operators' tools expect: Prometheus' /metrics and Bull Board. */
export const UNPREFIXED_ROUTES = [
  { path: 'metrics', method: RequestMethod.GET },
  'admin/queues',
  'admin/queues/{*path}',
];

/** Everything main.ts and the e2e tests share: prefix, validation, Swagger. */
export function setupApp(app: INestApplication, config: AppConfig): void {
  app.setGlobalPrefix(API_PREFIX, { exclude: UNPREFIXED_ROUTES });
  app.useGlobalPipes(
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      stopAtFirstError: false,
    }),
  );
  app.enableShutdownHooks();
  if (config.api.swagger) {
    const document = SwaggerModule.createDocument(
      app,
      new DocumentBuilder()
        .setTitle('AI movie task service')
        .setDescription(
          'GPU tasks of the AI movie platform: submit, follow, list, cancel and retry tasks that ' +
            'generate media. Every route except health needs the X-API-Key header.',
        )
        .setVersion('1')
        .addApiKey({ type: 'apiKey', in: 'header', name: API_KEY_HEADER }, 'api-key')
        .build(),
    );
    SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/json' });
  }
}
