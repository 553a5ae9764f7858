import { createHash, timingSafeEqual } from 'node:crypto';
import {
  Injectable,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AppConfig } from '@app/config';
import type { ProjectScope } from '@app/tasks';
import { IS_PUBLIC } from './public.decorator';

export const API_KEY_HEADER = 'x-api-key';

/** What a request is allowed to see once its key checked out. */
export interface ApiPrincipal {
  /** Projects the key may reach; null: all. */
  scope: ProjectScope;
}

/**
 * X-API-Key on every route not marked @Public. Keys are compared as SHA-256 digests with
 * timingSafeEqual, against every configured key, so timing tells nothing about which part matched.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly digests: Buffer[];

  constructor(
    private readonly reflector: Reflector,
    config: AppConfig,
  ) {
    this.digests = config.api.keys.map(digest);
  }

  canActivate(context: ExecutionContext): boolean {
    if (
      this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [
        context.getHandler(),
        context.getClass(),
      ])
    ) {
      return true;
    }
    const request = context
      .switchToHttp()
      .getRequest<{ headers: Record<string, unknown>; principal?: ApiPrincipal }>();
    const header = request.headers[API_KEY_HEADER];
    const key = Array.isArray(header) ? header[0] : header;
    if (typeof key !== 'string' || key.length === 0) {
      throw new UnauthorizedException('API key required in X-API-Key header');
    }
    const given = digest(key);
    let match = false;
    for (const d of this.digests) match = timingSafeEqual(given, d) || match;
    if (!match) throw new UnauthorizedException('Invalid API key');
    request.principal = { scope: null };
    return true;
  }
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
