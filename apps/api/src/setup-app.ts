import type { IncomingMessage } from 'node:http';
import { RequestMethod, ValidationPipe, type INestApplication } from '@nestjs/common';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '@app/config';
import { registerRequestLog } from '@app/observability';
import { PinoLogger } from 'nestjs-pino';
import { API_KEY_HEADER } from './auth/api-key.guard';
import { jsonBodyParser } from './common/json-body.parser';
import { registerRefusedBodyDrain } from './common/refused-body.drain';

export const API_PREFIX = 'api/v1';

/** Served at the root, as operators' tools expect: Prometheus' /metrics and Bull Board. */
export const UNPREFIXED_ROUTES = [
  { path: 'metrics', method: RequestMethod.GET },
  'admin/queues',
  'admin/queues/{*path}',
];

/** Seed 000 probes `GET /health` at the root; it is answered by the route of `/api/v1/health`. */
export const ROOT_HEALTH_PATH = '/health';

/** The URL the router sees: `GET|HEAD /health[?…]` becomes `/api/v1/health[?…]`, the rest stays. */
export function rewriteRootHealth(method: string | undefined, url: string): string {
  if (method !== 'GET' && method !== 'HEAD') return url;
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  return path === ROOT_HEALTH_PATH
    ? `/${API_PREFIX}/health${query === -1 ? '' : url.slice(query)}`
    : url;
}

/**
 * The HTTP server main.ts and the e2e tests share. Bodies over API_BODY_LIMIT are refused with 413
 * before they are read whole; the 413 goes out once the rest of the body has been read and
 * discarded (at most API_BODY_DISCARD_LIMIT bytes, see registerRefusedBodyDrain). On close, Fastify stops accepting connections, answers requests that
 * still arrive on open connections with 503, closes idle keep-alive connections at once and lets
 * in-flight requests finish (main.ts bounds how long). Bodies are JSON only (415 otherwise), parsed
 * by `jsonBodyParser`, which refuses prototype-poisoning keys and deep nesting with 400. Each
 * answered request gets a request line on the app's root logger (`registerRequestLog`).
 */
export function createApiAdapter(config: AppConfig): FastifyAdapter {
  const adapter = new FastifyAdapter({
    bodyLimit: config.api.bodyLimitBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    // One health route, two addresses: the body, status and key rules are those of /api/v1/health.
    rewriteUrl: (req: IncomingMessage) => rewriteRootHealth(req.method, req.url ?? '/'),
    // Requests Fastify refuses before routing (bad percent-encoding): our error shape, not its own.
    frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      void reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: err.message });
    },
  });
  const fastify = adapter.getInstance();
  registerRequestLog(fastify, () => PinoLogger.root);
  registerRefusedBodyDrain(fastify, config.api.bodyDiscardLimitBytes);
  fastify.removeContentTypeParser('text/plain');
  const parseJson = jsonBodyParser(fastify);
  // Registering a parser here also keeps Nest from adding its own JSON and urlencoded ones.
  adapter.useBodyParser(
    'application/json',
    false,
    { bodyLimit: config.api.bodyLimitBytes },
    (req, body, done) => parseJson(req, body, done),
  );
  return adapter;
}

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
            'generate media. Every route except health needs the X-API-Key header. A key may be ' +
            'limited to projects (API_KEYS entry `key:project-a|project-b`): other projects then ' +
            'answer 404, as if they did not exist, and routes that show every project (workers ' +
            'status, the queue board) answer 403. Bodies are JSON of at most API_BODY_LIMIT ' +
            'bytes (413 beyond).',
        )
        .setVersion('1')
        .addApiKey({ type: 'apiKey', in: 'header', name: API_KEY_HEADER }, 'api-key')
        .build(),
    );
    SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/json' });
  }
}
