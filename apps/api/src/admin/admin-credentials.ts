import { createHash, timingSafeEqual } from 'node:crypto';
import type { AppConfig } from '@app/config';

/** `forbidden`: a valid key limited to projects (the board shows every project's jobs). */
export type CredentialCheck = 'ok' | 'missing' | 'invalid' | 'forbidden';

/**
 * Who may open Bull Board: a valid X-API-Key, or, when BULL_BOARD_BASIC_AUTH is set, its user and
 * password (a browser cannot send X-API-Key; it prompts for basic auth). Secrets are compared as
 * SHA-256 digests with timingSafeEqual, so timing tells nothing about a partial match. Keys limited
 * to projects are recognised but refused: the board shows the jobs of every project.
 */
export class AdminCredentials {
  private readonly keys: Buffer[];
  private readonly scopedKeys: Buffer[];
  private readonly basic?: Buffer;

  constructor(config: AppConfig) {
    this.keys = config.api.keyScopes.filter((k) => k.projects === null).map((k) => digest(k.key));
    this.scopedKeys = config.api.keyScopes
      .filter((k) => k.projects !== null)
      .map((k) => digest(k.key));
    const auth = config.ops.bullBoard.basicAuth;
    if (auth) this.basic = digest(`${auth.user}:${auth.password}`);
  }

  get basicAuthEnabled(): boolean {
    return this.basic !== undefined;
  }

  check(headers: Record<string, string | string[] | undefined>): CredentialCheck {
    const key = first(headers['x-api-key']);
    const authorization = first(headers.authorization);
    if (key) {
      const given = digest(key);
      const full = matchesAny(given, this.keys);
      const scoped = matchesAny(given, this.scopedKeys);
      return full ? 'ok' : scoped ? 'forbidden' : 'invalid';
    }
    if (this.basic && authorization?.toLowerCase().startsWith('basic ')) {
      const pair = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
      return matchesAny(digest(pair), [this.basic]) ? 'ok' : 'invalid';
    }
    return 'missing';
  }
}

function first(value: string | string[] | undefined): string | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  return v && v.length > 0 ? v : undefined;
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

function matchesAny(given: Buffer, expected: Buffer[]): boolean {
  let match = false;
  for (const e of expected) match = timingSafeEqual(given, e) || match;
  return match;
}
