import { STATUS_CODES } from 'node:http';
import { Catch, HttpException, HttpStatus, type ArgumentsHost } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { AppConfig } from '@app/config';
import type { FastifyReply } from 'fastify';

/** A 4xx whose body would lack our shape: Fastify's own refusals, or a bare-message exception. */
function clientError(err: unknown): { status: number; message: string | string[] } | undefined {
  if (err instanceof HttpException) {
    const body = err.getResponse();
    const status = err.getStatus();
    if (status >= 500) return undefined;
    if (typeof body === 'string') return { status, message: body };
    // `new NotFoundException()` and the like: {statusCode, message} without `error`.
    const message = (body as { message?: unknown }).message;
    if (!('error' in body) && (typeof message === 'string' || Array.isArray(message)))
      return { status, message: message as string | string[] };
    return undefined;
  }
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (err instanceof Error && typeof status === 'number' && status >= 400 && status < 500)
    return { status, message: err.message };
  return undefined;
}

/**
 * Gives every 4xx our error shape {statusCode, error, message}: Fastify's refusals (413 body too
 * large, 415 media type, 400 unparsable JSON or URL), which Nest maps to `HttpException(message)`
 * and sends without `error`. Everything else goes to Nest's handling, which answers unknown
 * errors with a bare 500 and logs them.
 */
@Catch()
export class ClientErrorFilter extends BaseExceptionFilter {
  constructor(private readonly config: AppConfig) {
    super();
  }

  override catch(err: unknown, host: ArgumentsHost): void {
    const refusal = clientError(err);
    if (!refusal) {
      super.catch(err, host);
      return;
    }
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    void reply.status(refusal.status).send({
      statusCode: refusal.status,
      error: STATUS_CODES[refusal.status] ?? 'Bad Request',
      message: this.explain(refusal.status) ?? refusal.message,
    });
  }

  /** Fastify's words for these two say less than a client needs to fix its request. */
  private explain(status: number): string | undefined {
    if (status === Number(HttpStatus.PAYLOAD_TOO_LARGE))
      return `Request body is larger than ${this.config.api.bodyLimitBytes} bytes (API_BODY_LIMIT)`;
    if (status === Number(HttpStatus.UNSUPPORTED_MEDIA_TYPE))
      return 'Content-Type must be application/json';
    return undefined;
  }
}
