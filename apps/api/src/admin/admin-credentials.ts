import { createHash, timingSafeEqual } from 'node:crypto';
import type { AppConfig } from '@app/config';

export type CredentialCheck = 'ok' | 'missing' | 'invalid';

/**
 * Who may open Bull Board: a valid X-API-Key, or, when BULL_BOARD_BASIC_AUTH is set, its user and
 * password (a browser cannot send X-API-Key; it prompts for basic auth). Secrets are compared as
 * SHA-256 digests with timingSafeEqual, so timing tells nothing about a partial match.
 */
export class AdminCredentials {
  private readonly keys: Buffer[];
  private readonly basic?: Buffer;

  constructor(config: AppConfig) {
    this.keys = config.api.keys.map(digest);
    const auth = config.ops.bullBoard.basicAuth;
    if (auth) this.basic = digest(`${auth.user}:${auth.password}`);
  }

  get basicAuthEnabled(): boolean {
    return this.basic !== undefined;
  }

  check(headers: Record<string, string | string[] | undefined>): CredentialCheck {
    const key = first(headers['x-api-key']);
    const authorization = first(headers.authorization);
    if (key) return matchesAny(digest(key), this.keys) ? 'ok' : 'invalid';
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
