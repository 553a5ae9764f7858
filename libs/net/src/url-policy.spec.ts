import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AppConfig } from '@app/config';
import { addressProblem } from './address-policy';
import { guardedLookup, UnsafeUrlError, UrlPolicy } from './url-policy';

describe('addressProblem', () => {
  it.each([
    '127.0.0.1',
    '127.1.2.3',
    '10.0.0.1',
    '172.16.5.4',
    '192.168.1.1',
    '169.254.169.254', // AWS, GCP, Azure metadata
    '100.100.100.200', // Alibaba metadata
    '192.0.0.192', // Oracle metadata
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fd00:ec2::254', // AWS IPv6 metadata
    'fc00::5',
    '::ffff:127.0.0.1',
    '::ffff:169.254.169.254',
    '64:ff9b::a00:1', // NAT64 of 10.0.0.1
    '2002:a00:1::', // 6to4 of 10.0.0.1
  ])('refuses %s', (address) => {
    expect(addressProblem(address)).toEqual(expect.any(String));
  });

  it.each(['93.184.215.14', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8'])(
    'allows %s',
    (address) => {
      expect(addressProblem(address)).toBeUndefined();
    },
  );
});

/** Treats 127.0.0.1 as a public address, so a loopback server can stand in for the internet. */
class LoopbackAsPublic extends UrlPolicy {
  protected override addressProblem(address: string): string | undefined {
    return address === '127.0.0.1' ? undefined : super.addressProblem(address);
  }
}

function config(allowPrivate: boolean): AppConfig {
  return AppConfig.fromEnv({
    API_KEYS: 'k',
    ALLOW_PRIVATE_URLS: String(allowPrivate),
    FETCH_TIMEOUT_MS: '2000',
  });
}

describe('UrlPolicy', () => {
  let server: Server;
  let port: number;
  const hits: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(`${req.method} ${req.url}`);
      const url = new URL(req.url ?? '/', 'http://x');
      const to = url.searchParams.get('to');
      if (url.pathname === '/redirect' && to) {
        res.writeHead(Number(url.searchParams.get('code') ?? 302), { location: to }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} ok`);
    });
    await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function refusal(promise: Promise<unknown>): Promise<UnsafeUrlError> {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UnsafeUrlError);
    return err as UnsafeUrlError;
  }

  describe('when private addresses are refused', () => {
    const policy = new UrlPolicy(config(false));
    afterAll(() => policy.onModuleDestroy());

    it.each([
      ['http://127.0.0.1:8080/x.png', 'loopback'],
      ['http://[::1]/x.png', 'loopback'],
      ['http://169.254.169.254/latest/meta-data/', 'link-local'],
      ['http://10.1.2.3/a', 'private'],
      ['http://0x7f.1/a', 'loopback'], // the URL parser normalises it to 127.0.0.1
      ['http://2130706433/a', 'loopback'],
      ['http://[::ffff:7f00:1]/a', 'loopback'],
      ['http://localhost:3000/a', 'loopback name'],
      ['http://api.localhost/a', 'loopback name'],
    ])('refuses %s, naming the field', async (url, why) => {
      const err = await refusal(policy.check(url, 'task_data.storyboard_frames[0]'));
      expect(err.field).toBe('task_data.storyboard_frames[0]');
      expect(err.message).toContain('task_data.storyboard_frames[0]');
      expect(err.message).toContain(why);
    });

    it('refuses other schemes and credentials, and never shows the query', async () => {
      expect((await refusal(policy.check('ftp://example.com/a', 'f'))).message).toContain(
        'http and https',
      );
      expect((await refusal(policy.check('file:///etc/passwd', 'f'))).message).toContain(
        'http and https',
      );
      expect((await refusal(policy.check('http://u:p@example.com/a', 'f'))).message).toContain(
        'credentials',
      );
      const err = await refusal(policy.check('http://10.0.0.1/a?token=secret', 'f'));
      expect(err.message).not.toContain('secret');
      expect(err.url).toBe('http://10.0.0.1/a');
    });

    it('refuses a name that does not resolve at submit; when fetching, it is a network error', async () => {
      const err = await refusal(policy.check('http://no-such-host.invalid/a', 'callback_url'));
      expect(err.message).toContain('does not resolve');
      const later = await policy
        .fetch('http://no-such-host.invalid/a', { field: 'callback_url' })
        .catch((e: unknown) => e);
      expect(later).not.toBeInstanceOf(UnsafeUrlError);
      expect(JSON.stringify((later as { cause?: unknown }).cause ?? {})).toContain('ENOTFOUND');
    });

    it('refuses at fetch time too, before any byte is sent', async () => {
      const before = hits.length;
      await refusal(policy.fetch(`http://127.0.0.1:${port}/a`, { field: 'f' }));
      expect(hits.length).toBe(before);
    });

    it('refuses at connect time a name whose addresses are refused (DNS rebinding)', async () => {
      const lookup = guardedLookup((a) => addressProblem(a));
      const err = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
        lookup('localhost', { all: true }, (e) => resolve(e)),
      );
      expect(err?.code).toBe('EADDRNOTALLOWED');
      expect(err?.message).toMatch(/localhost resolves to .*loopback/);
    });
  });

  describe('redirects', () => {
    const policy = new LoopbackAsPublic(config(false));
    afterAll(() => policy.onModuleDestroy());
    const base = () => `http://127.0.0.1:${port}`;

    it('follows an allowed redirect and checks its target', async () => {
      const res = await policy.fetch(
        `${base()}/redirect?to=${encodeURIComponent(`${base()}/final`)}`,
        { field: 'f' },
      );
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('GET ok');
    });

    it('refuses a redirect to a private address without fetching it', async () => {
      // 127.0.0.2 is loopback too (and served by the same socket on Linux), but not "public" here.
      const target = `http://127.0.0.2:${port}/internal`;
      const before = hits.filter((h) => h.includes('/internal')).length;
      const err = await refusal(
        policy.fetch(`${base()}/redirect?to=${encodeURIComponent(target)}`, {
          field: 'task_data.style_guide',
        }),
      );
      expect(err.field).toBe('task_data.style_guide');
      expect(err.message).toContain('127.0.0.2');
      expect(hits.filter((h) => h.includes('/internal')).length).toBe(before);
      const meta = await refusal(
        policy.fetch(
          `${base()}/redirect?to=${encodeURIComponent('http://169.254.169.254/latest/')}`,
          { field: 'f' },
        ),
      );
      expect(meta.message).toContain('link-local');
    });

    it('stops after maxRedirects, and turns a POST into a GET after 303', async () => {
      const loop = `${base()}/redirect?to=${encodeURIComponent(`${base()}/redirect?to=/x`)}`;
      const err = await refusal(policy.fetch(loop, { field: 'f', maxRedirects: 1 }));
      expect(err.message).toContain('more than 1 redirects');
      const none = await refusal(policy.fetch(loop, { field: 'f', maxRedirects: 0 }));
      expect(none.message).toContain('not followed');
      const res = await policy.fetch(`${base()}/redirect?code=303&to=/after`, {
        field: 'f',
        method: 'POST',
        body: 'x',
      });
      expect(await res.text()).toBe('GET ok');
    });
  });

  describe('with ALLOW_PRIVATE_URLS', () => {
    const policy = new UrlPolicy(config(true));
    afterAll(() => policy.onModuleDestroy());

    it('reaches loopback services but still refuses other schemes', async () => {
      const res = await policy.fetch(`http://127.0.0.1:${port}/ok`, { field: 'f' });
      expect(res.status).toBe(200);
      await res.text();
      await refusal(policy.check('gopher://127.0.0.1/', 'f'));
    });
  });
});
