import { TEST_API_KEY } from './test-config';

export interface HttpResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

/** A small JSON client for e2e tests; sends the test API key unless told otherwise. */
export class HttpClient {
  constructor(readonly baseUrl: string) {}

  async request<T = any>(
    method: string,
    path: string,
    opts: {
      body?: unknown;
      rawBody?: string;
      key?: string | null;
      headers?: Record<string, string>;
    } = {},
  ): Promise<HttpResult<T>> {
    const headers: Record<string, string> = { ...opts.headers };
    const key = opts.key === undefined ? TEST_API_KEY : opts.key;
    if (key !== null) headers['x-api-key'] = key;
    let body: string | undefined;
    if (opts.rawBody !== undefined || opts.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = opts.rawBody ?? JSON.stringify(opts.body);
    }
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  get<T = any>(path: string, opts?: Parameters<HttpClient['request']>[2]) {
    return this.request<T>('GET', path, opts);
  }

  post<T = any>(path: string, body?: unknown, opts?: Parameters<HttpClient['request']>[2]) {
    return this.request<T>('POST', path, { ...opts, body });
  }

  delete<T = any>(path: string, opts?: Parameters<HttpClient['request']>[2]) {
    return this.request<T>('DELETE', path, opts);
  }
}
