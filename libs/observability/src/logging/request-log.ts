import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

/** Probes and scrapes run every few seconds; their request lines would drown everything else. */
export const QUIET_ROUTES = /^\/(api\/v1\/health\/(live|ready)|metrics)(\?|$)/;

/** What a request line says of the request; the logger's `req` serializer redacts it further. */
function requestFields(request: FastifyRequest) {
  return {
    id: request.id,
    method: request.method,
    url: request.raw.url,
    headers: request.headers,
  };
}

/**
 * One request line per answered request ("request completed": method, url, headers with the
 * secrets redacted, status, `responseTime` in ms; 5xx at error, the rest at info), and one per
 * request the client gave up on ("request aborted"), from Fastify's own hooks on the app's root
 * logger — `logger()` is asked at request time, so it may be set up after the server.
 *
 * The line is written after the response has gone out, and nothing is built at all when its
 * level is off: no per-request middleware, child logger or async context, which cost about a
 * fifth of a submit's CPU when pino-http did this (see BENCHMARKS.md).
 */
export function registerRequestLog(
  fastify: FastifyInstance,
  logger: () => Logger | undefined,
): void {
  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done) => {
    const log = logger();
    const status = reply.statusCode;
    const level = status >= 500 ? 'error' : 'info';
    if (log?.isLevelEnabled(level) && !QUIET_ROUTES.test(request.raw.url ?? '')) {
      log[level](
        {
          req: requestFields(request),
          // The response itself, as pino-http logged it: its serializer keeps status and headers.
          res: reply.raw,
          responseTime: Math.round(reply.elapsedTime * 10) / 10,
        },
        'request completed',
      );
    }
    done();
  });
  fastify.addHook('onRequestAbort', (request: FastifyRequest, done) => {
    const log = logger();
    if (log?.isLevelEnabled('info')) {
      log.info({ req: requestFields(request) }, 'request aborted');
    }
    done();
  });
}
