import { Writable } from 'node:stream';
import { AppConfig } from '@app/config';
import { LogCapture } from '@app/testing';
import pino from 'pino';
import { loggerParams, redactUrl } from './logger-params';
import { formatPrettyLine } from './pretty.stream';
import { Logger as NestLogger } from '@nestjs/common';
import { Logger, PinoLogger } from 'nestjs-pino';

/** A pino logger built from the same options nestjs-pino gets. */
function logger(env: Record<string, string> = {}) {
  const capture = new LogCapture();
  const config = AppConfig.fromEnv({ API_KEYS: 'k1', LOG_LEVEL: 'debug', ...env });
  const [options] = loggerParams(config, 'api', capture).pinoHttp as [pino.LoggerOptions, unknown];
  return { log: pino(options, capture), lines: capture.lines };
}

describe('logger params', () => {
  it('never writes API keys, authorization headers or secrets', () => {
    const { log, lines } = logger();
    log.info(
      {
        req: {
          method: 'GET',
          url: '/api/v1/tasks/x/status',
          headers: { 'x-api-key': 'sk-live-123', authorization: 'Basic YTpi', host: 'h' },
        },
        config: { api: { keys: ['sk-live-123'] } },
        storage: { secretAccessKey: 'aws-secret', mediaUrlSecret: 'hmac' },
        payload: { apiKey: 'payload-key' },
        keys: { webhookSecret: 'whsec_derived' },
      },
      'request completed',
    );
    const text = JSON.stringify(lines);
    for (const secret of ['sk-live-123', 'YTpi', 'aws-secret', 'hmac', 'payload-key', 'whsec_']) {
      expect(text).not.toContain(secret);
    }
    expect(lines[0].req.headers).toMatchObject({ 'x-api-key': '[redacted]', host: 'h' });
  });

  it('hides the signature of media URLs', () => {
    expect(redactUrl('/api/v1/media/projects/p/a.jpg?expires=9&signature=abc&x=1')).toBe(
      '/api/v1/media/projects/p/a.jpg?expires=9&signature=[redacted]&x=1',
    );
  });

  it("writes JSON with level, time, app, and a Nest logger's field object as fields", () => {
    const capture = new LogCapture();
    const config = AppConfig.fromEnv({ API_KEYS: 'k1', LOG_LEVEL: 'debug' });
    const params = loggerParams(config, 'api', capture);
    NestLogger.overrideLogger(new Logger(new PinoLogger(params), params));
    try {
      const log = new NestLogger('TaskRunner');
      log.log({ task_id: 'abc-1', project_id: 'proj_9' }, 'started generate_image');
      log.warn({ task_id: 't2', project_id: 'p2' }, 'attempt 1 failed');
      // Messages are not parsed for ids: fields are data, given as data.
      log.log('task_id=from-text done');
    } finally {
      NestLogger.overrideLogger(new NestLogger());
    }
    const lines = capture.lines;
    expect(lines[0]).toMatchObject({
      level: 30,
      app: 'api',
      context: 'TaskRunner',
      task_id: 'abc-1',
      project_id: 'proj_9',
      msg: 'started generate_image',
    });
    expect(typeof lines[0].time).toBe('string');
    expect(lines[1]).toMatchObject({ level: 40, task_id: 't2', project_id: 'p2' });
    expect(lines[2].task_id).toBeUndefined();
  });

  it('follows LOG_LEVEL (verbose is pino trace)', () => {
    const quiet = logger({ LOG_LEVEL: 'warn' });
    quiet.log.info('hidden');
    quiet.log.warn('shown');
    expect(quiet.lines.map((l) => l.msg)).toEqual(['shown']);
    expect(logger({ LOG_LEVEL: 'verbose' }).log.level).toBe('trace');
  });
});

describe('pretty format', () => {
  it('prints time, level, context, message and the other fields on one line', () => {
    const line = JSON.stringify({
      level: 40,
      time: '2026-11-21T07:00:00.123Z',
      pid: 1,
      app: 'worker',
      context: 'TaskRunner',
      msg: 'retrying',
      task_id: 't1',
      err: { message: 'x' },
    });
    expect(formatPrettyLine(line)).toBe(
      '07:00:00.123 WARN  [TaskRunner] retrying task_id=t1 err={"message":"x"}',
    );
    expect(formatPrettyLine(line, true)).toContain('\u001b[33mWARN');
    expect(formatPrettyLine('not json')).toBe('not json');
    const failed = JSON.stringify({
      level: 50,
      time: 0,
      msg: 'boom',
      err: { stack: 'Error: x\n    at y' },
    });
    expect(formatPrettyLine(failed)).toBe('00:00:00.000 ERROR boom\nError: x\n    at y');
  });

  it('is what LOG_FORMAT=pretty writes', () => {
    const out: string[] = [];
    const target = new Writable({
      write(chunk: Buffer, _e, done) {
        out.push(chunk.toString());
        done();
      },
    });
    const config = AppConfig.fromEnv({ API_KEYS: 'k', LOG_FORMAT: 'pretty' });
    const params = loggerParams(config, 'api');
    const [options, destination] = params.pinoHttp as [pino.LoggerOptions, any];
    expect(destination.constructor.name).toBe('PrettyLogStream');
    (destination as { target: NodeJS.WritableStream }).target = target;
    pino(options, destination).info({ context: 'Api' }, 'listening');
    expect(out.join('')).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}\[Api\] listening\n$/);
  });
});
