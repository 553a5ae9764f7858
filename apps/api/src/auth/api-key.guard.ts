import { createHash, timingSafeEqual } from 'node:crypto';
import {
  ForbiddenException,
  Injectable,
  UnauthorizedException,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AppConfig } from '@app/config';
import type { ProjectScope } from '@app/tasks';
import { IS_PUBLIC, UNSCOPED_ONLY } from './public.decorator';

export const API_KEY_HEADER = 'x-api-key';

/** What a request is allowed to see once its key checked out. */
export interface ApiPrincipal {
  /** Projects the key may reach; null: all. */
  scope: ProjectScope;
  /**
   * Stands for the key where one is needed (rate-limit buckets): hex SHA-256 of the key, so the
   * key itself never reaches Redis or a log line.
   */
  keyId: string;
}

/** A request as the guard sees it (Fastify's, reduced to what is used). */
export interface ApiRequest {
  headers: Record<string, string | string[] | undefined>;
  principal?: ApiPrincipal;
}

interface KnownKey {
  digest: Buffer;
  scope: ProjectScope;
}

/**
 * X-API-Key on every route not marked @Public. Keys are compared as SHA-256 digests with
 * timingSafeEqual against every configured key, with no early exit, so timing tells nothing about
 * which key or which part matched. The matching key's project list becomes `principal.scope`.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  private readonly keys: KnownKey[];

  constructor(
    private readonly reflector: Reflector,
    config: AppConfig,
  ) {
    this.keys = config.api.keyScopes.map((k) => ({ digest: digest(k.key), scope: k.projects }));
  }

  canActivate(context: ExecutionContext): boolean {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const request = context.switchToHttp().getRequest<ApiRequest>();
    const header = request.headers[API_KEY_HEADER];
    const key = Array.isArray(header) ? header[0] : header;
    if (typeof key !== 'string' || key.length === 0) {
      throw new UnauthorizedException('API key required in X-API-Key header');
    }
    const given = digest(key);
    let found: KnownKey | undefined;
    for (const known of this.keys) {
      const equal = timingSafeEqual(given, known.digest);
      // The first configured entry wins when a key is listed twice.
      found = equal && !found ? known : found;
    }
    if (!found) throw new UnauthorizedException('Invalid API key');
    if (found.scope && this.reflector.getAllAndOverride<boolean>(UNSCOPED_ONLY, targets)) {
      throw new ForbiddenException('This route needs an API key that is not limited to projects');
    }
    request.principal = { scope: found.scope, keyId: given.toString('hex') };
    return true;
  }
}

function digest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}
