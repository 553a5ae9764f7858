import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { ProjectScope } from '@app/tasks';
import type { ApiPrincipal } from './api-key.guard';

/** The project scope of the caller's API key (null: every project). */
export const Scope = createParamDecorator((_: unknown, ctx: ExecutionContext): ProjectScope => {
  const request = ctx.switchToHttp().getRequest<{ principal?: ApiPrincipal }>();
  return request.principal?.scope ?? null;
});
