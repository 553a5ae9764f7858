import { AppConfig } from '@app/config';
import { LogCapture } from '@app/testing';
import Fastify, { type FastifyInstance } from 'fastify';
import type pino from 'pino';
import pinoHttp from 'pino-http';
import { loggerParams } from './logger-params';
import { registerRequestLog } from './request-log';

/**
 * A Fastify server with the request log on a root logger made as nestjs-pino makes it (pino-http's
 * logger from our params, so its serializers are the ones production runs).
 */
async function server(env: Record<string, string> = {}) {
  const capture = new LogCapture();
  const config = AppConfig.fromEnv({ API_KEYS: 'k1', LOG_LEVEL: 'info', ...env });
  const [options] = loggerParams(config, 'api', capture).pinoHttp as [pino.LoggerOptions, unknown];
  const root = pinoHttp(options, capture).logger;
  const fastify: FastifyInstance = Fastify();
  registerRequestLog(fastify, () => root);
  fastify.get('/api/v1/tasks/:id/status', () => ({ ok: true }));
  fastify.get('/api/v1/media/*', () => 'bytes');
  fastify.get('/api/v1/broken', () => {
    throw new Error('boom');
  });
  fastify.get('/api/v1/health/live', () => ({ status: 'ok' }));
  fastify.get('/metrics', () => '');
  await fastify.ready();
  return { fastify, lines: capture.lines };
}

describe('registerRequestLog', () => {
  it('writes one line per answered request: method, url, status, time; secrets redacted', async () => {
    const { fastify, lines } = await server();
    const res = await fastify.inject({
      method: 'GET',
      url: '/api/v1/tasks/t1/status',
      headers: { 'x-api-key': 'sk-live-123', authorization: 'Basic YTpi', cookie: 'sid=9' },
    });
    expect(res.statusCode).toBe(200);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 30,
      app: 'api',
      msg: 'request completed',
      req: { method: 'GET', url: '/api/v1/tasks/t1/status' },
      res: { statusCode: 200 },
    });
    expect(typeof lines[0].req.id).toBe('string');
    expect(typeof lines[0].responseTime).toBe('number');
    expect(lines[0].req.headers['x-api-key']).toBe('[redacted]');
    const text = JSON.stringify(lines);
    for (const secret of ['sk-live-123', 'YTpi', 'sid=9']) expect(text).not.toContain(secret);
    await fastify.close();
  });

  it('hides the signature of media URLs', async () => {
    const { fastify, lines } = await server();
    await fastify.inject('/api/v1/media/projects/p/a.jpg?expires=9&signature=abc123');
    expect(lines[0].req.url).toBe('/api/v1/media/projects/p/a.jpg?expires=9&signature=[redacted]');
    expect(JSON.stringify(lines)).not.toContain('abc123');
    await fastify.close();
  });

  it('logs 5xx at error, 4xx at info', async () => {
    const { fastify, lines } = await server();
    await fastify.inject('/api/v1/broken');
    await fastify.inject('/api/v1/nothing-here');
    expect(lines.map((l) => [l.res.statusCode, l.level])).toEqual([
      [500, 50],
      [404, 30],
    ]);
    await fastify.close();
  });

  it('leaves out probes and scrapes, and writes nothing below LOG_LEVEL', async () => {
    const quiet = await server();
    await quiet.fastify.inject('/api/v1/health/live');
    await quiet.fastify.inject('/metrics');
    expect(quiet.lines).toEqual([]);
    await quiet.fastify.close();

    const warn = await server({ LOG_LEVEL: 'warn' });
    await warn.fastify.inject('/api/v1/tasks/t1/status');
    await warn.fastify.inject('/api/v1/broken');
    expect(warn.lines.map((l) => l.res.statusCode)).toEqual([500]);
    await warn.fastify.close();
  });
});
