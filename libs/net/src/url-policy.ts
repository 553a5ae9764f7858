import dns from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { Agent, fetch, type RequestInit, type Response } from 'undici';
import { addressProblem, bareHostname } from './address-policy';

/** The error code our connect-time lookup fails with when a name resolves to a refused address. */
const REFUSED_CODE = 'EADDRNOTALLOWED';
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/**
 * A URL the service will not fetch or call. `field` names where it came from
 * (`task_data.storyboard_frames[0]`, `callback_url`); `url` is origin + path only.
 */
export class UnsafeUrlError extends Error {
  override readonly name = 'UnsafeUrlError';

  constructor(
    readonly field: string,
    readonly url: string,
    readonly reason: string,
  ) {
    super(`${field}: ${url} is not allowed: ${reason}`);
  }
}

/** Origin and path of a URL as logs and errors show it: never its query or credentials. */
export function shownUrl(url: string | URL): string {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

export interface SafeFetchInit extends Omit<RequestInit, 'redirect' | 'dispatcher'> {
  /** Where the URL came from, for errors. */
  field: string;
  /** Redirects followed, each checked again like the first URL (0: none). */
  maxRedirects?: number;
}

/**
 * The one gate for every URL the service reaches out to (task inputs, webhooks): http(s) only, no
 * credentials, and unless ALLOW_PRIVATE_URLS no private, loopback, link-local (metadata), shared
 * or reserved address — checked on the literal host, on what the name resolves to, again at
 * connect time (so DNS rebinding between the check and the connection does not help) and again
 * for every redirect.
 */
@Injectable()
export class UrlPolicy implements OnModuleDestroy {
  readonly allowPrivate: boolean;
  /** undici dispatcher whose connections only reach allowed addresses. */
  readonly dispatcher: Agent;

  constructor(config: AppConfig) {
    this.allowPrivate = config.fetch.allowPrivateUrls;
    const timeout = config.fetch.timeoutMs;
    this.dispatcher = new Agent({
      connect: {
        timeout,
        ...(this.allowPrivate
          ? {}
          : { lookup: guardedLookup((address) => this.addressProblem(address)) }),
      },
      // Backstops: callers bound the whole exchange with their own signal (FETCH_TIMEOUT_MS, ...).
      headersTimeout: timeout * 2,
      bodyTimeout: timeout * 2,
    });
  }

  /** Why an address is refused (undefined: allowed); see addressProblem. */
  protected addressProblem(address: string): string | undefined {
    return addressProblem(address);
  }

  async onModuleDestroy(): Promise<void> {
    await this.dispatcher.close().catch(() => undefined);
  }

  /**
   * Checks a URL before it is used; throws UnsafeUrlError naming `field`. With `resolve` (the
   * default) the host name is looked up: a name that resolves to a refused address is refused,
   * and so is one that does not exist unless `allowUnresolved`. Other DNS failures pass: the
   * connection is checked again anyway.
   */
  async check(
    url: string | URL,
    field: string,
    opts: { resolve?: boolean; allowUnresolved?: boolean } = {},
  ): Promise<URL> {
    let parsed: URL;
    try {
      parsed = typeof url === 'string' ? new URL(url) : url;
    } catch {
      throw new UnsafeUrlError(field, '(invalid URL)', 'not a valid URL');
    }
    const shown = shownUrl(parsed);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new UnsafeUrlError(field, shown, 'only http and https URLs are allowed');
    }
    if (parsed.username || parsed.password) {
      throw new UnsafeUrlError(field, shown, 'credentials in the URL are not allowed');
    }
    if (this.allowPrivate) return parsed;
    const host = bareHostname(parsed);
    if (isIP(host)) {
      const problem = this.addressProblem(host);
      if (problem) throw new UnsafeUrlError(field, shown, problem);
      return parsed;
    }
    const name = host.toLowerCase().replace(/\.$/, '');
    if (name === 'localhost' || name.endsWith('.localhost')) {
      throw new UnsafeUrlError(field, shown, `${host} is a loopback name`);
    }
    if (opts.resolve === false) return parsed;
    let addresses: dns.LookupAddress[];
    try {
      addresses = await dns.promises.lookup(host, { all: true, verbatim: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' && !opts.allowUnresolved) {
        throw new UnsafeUrlError(field, shown, `${host} does not resolve`);
      }
      return parsed;
    }
    for (const { address } of addresses) {
      const problem = this.addressProblem(address);
      if (problem) throw new UnsafeUrlError(field, shown, `${host} resolves to ${problem}`);
    }
    return parsed;
  }

  /**
   * fetch through the guarded dispatcher. Redirects are followed by hand, up to `maxRedirects`,
   * each target checked like the first URL; 303 (and 301/302 after a POST) continue as GET.
   * A refused address at connect time becomes an UnsafeUrlError, not a network error.
   */
  async fetch(url: string | URL, init: SafeFetchInit): Promise<Response> {
    const { field, maxRedirects = 5, ...rest } = init;
    // A name that stopped resolving since submit is a network error here (retried), not a refusal.
    let current = await this.check(url, field, { allowUnresolved: true });
    let request: RequestInit = rest;
    for (let hop = 0; ; hop++) {
      let response: Response;
      try {
        response = await fetch(current, {
          ...request,
          redirect: 'manual',
          dispatcher: this.dispatcher,
        });
      } catch (err) {
        const refused = refusal(err);
        if (refused) throw new UnsafeUrlError(field, shownUrl(current), refused);
        throw err;
      }
      const location = response.headers.get('location');
      if (!REDIRECTS.has(response.status) || !location) return response;
      await response.body?.cancel().catch(() => undefined);
      if (hop >= maxRedirects) {
        throw new UnsafeUrlError(
          field,
          shownUrl(current),
          maxRedirects === 0 ? 'redirects are not followed' : `more than ${maxRedirects} redirects`,
        );
      }
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw new UnsafeUrlError(field, shownUrl(current), 'redirect to an invalid URL');
      }
      current = await this.check(next, field, { allowUnresolved: true });
      const method = (request.method ?? 'GET').toUpperCase();
      if (
        response.status === 303 ||
        ((response.status === 301 || response.status === 302) && method === 'POST')
      ) {
        request = { ...request, method: 'GET', body: undefined };
      }
    }
  }
}

/** The refusal message carried by an error from our lookup, anywhere in its cause chain. */
function refusal(err: unknown): string | undefined {
  for (let e = err as { code?: string; message?: string; cause?: unknown } | undefined; e;) {
    if (e.code === REFUSED_CODE) return e.message;
    e = e.cause as typeof e;
  }
  return undefined;
}

/**
 * A dns.lookup that fails when any address of the name is refused by `problemOf` (a name with one
 * public and one private address is refused as a whole: the connection could go to either).
 */
export function guardedLookup(problemOf: (address: string) => string | undefined): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      for (const { address } of addresses) {
        const problem = problemOf(address);
        if (problem) {
          const refused = Object.assign(new Error(`${hostname} resolves to ${problem}`), {
            code: REFUSED_CODE,
          });
          return callback(refused, '', 0);
        }
      }
      if (options.all) {
        const all = callback as unknown as (e: null, a: dns.LookupAddress[]) => void;
        return all(null, addresses);
      }
      const first = addresses[0];
      if (!first) {
        const none = Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' });
        return callback(none, '', 0);
      }
      return callback(null, first.address, first.family);
    });
  };
}
