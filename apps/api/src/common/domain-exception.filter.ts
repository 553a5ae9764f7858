import { Catch, HttpStatus, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import {
  QueueFullError,
  TaskConflictError,
  TaskNotFoundError,
  TaskValidationError,
} from '@app/tasks';
import type { FastifyReply } from 'fastify';

type DomainError = TaskNotFoundError | TaskConflictError | TaskValidationError | QueueFullError;

/** Maps lifecycle errors to Nest's error shape {statusCode, error, message}. */
@Catch(TaskNotFoundError, TaskConflictError, TaskValidationError, QueueFullError)
export class DomainExceptionFilter implements ExceptionFilter<DomainError> {
  catch(err: DomainError, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (err instanceof TaskNotFoundError) {
      void reply
        .status(HttpStatus.NOT_FOUND)
        .send({ statusCode: 404, error: 'Not Found', message: err.message });
    } else if (err instanceof TaskConflictError) {
      void reply
        .status(HttpStatus.CONFLICT)
        .send({ statusCode: 409, error: 'Conflict', message: err.message });
    } else if (err instanceof TaskValidationError) {
      void reply
        .status(HttpStatus.BAD_REQUEST)
        .send({ statusCode: 400, error: 'Bad Request', message: err.messages });
    } else {
      void reply
        .status(HttpStatus.SERVICE_UNAVAILABLE)
        .header('Retry-After', String(err.retryAfterSeconds))
        .send({ statusCode: 503, error: 'Service Unavailable', message: err.message });
    }
  }
}
