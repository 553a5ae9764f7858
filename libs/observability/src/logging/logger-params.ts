import type { AppConfig } from '@app/config';
import type { Params } from 'nestjs-pino';
import pino, { type DestinationStream, type Level } from 'pino';
import { PrettyLogStream } from './pretty.stream';

/** Secrets that must never reach a log line (request headers, config-like objects, errors). */
export const REDACTED_PATHS = [
  'req.headers["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.apiKey',
  '*.api_key',
  '*.password',
  '*.secret',
  '*.secretAccessKey',
  '*.mediaUrlSecret',
  '*.webhookSecret',
  '*.token',
  'config.api.keys',
];

const LEVEL: Record<AppConfig['logLevel'], Level> = {
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  info: 'info',
  debug: 'debug',
  verbose: 'trace',
};

/** Signed media URLs are bearer tokens until they expire: keep the path, hide the signature. */
export function redactUrl(url: string | undefined): string | undefined {
  return url?.replace(/([?&]signature=)[^&]*/g, '$1[redacted]');
}

/**
 * nestjs-pino settings for `app` ('api' | 'worker'): JSON lines (or LOG_FORMAT=pretty), LOG_LEVEL,
 * redaction (request headers included), task_id/project_id as fields.
 */
export function loggerParams(
  config: AppConfig,
  app: string,
  destination: DestinationStream = config.ops.logFormat === 'pretty'
    ? new PrettyLogStream()
    : pino.destination({ fd: 1, sync: true }),
): Params {
  return {
    // No request middleware: the API writes its request lines from Fastify hooks
    // (registerRequestLog), without pino-http's per-request child logger and async context.
    forRoutes: [],
    pinoHttp: [
      {
        level: LEVEL[config.logLevel],
        base: { app, pid: process.pid },
        timestamp: pino.stdTimeFunctions.isoTime,
        redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
        serializers: {
          req: (req: { id: unknown; method: string; url: string; headers: object }) => ({
            id: req.id,
            method: req.method,
            url: redactUrl(req.url),
            headers: req.headers,
          }),
        },
      },
      destination,
    ],
  };
}
