import { TestService } from './support/service.harness';

/**
 * With ALLOW_PRIVATE_URLS off (production), every URL a task would fetch or call is checked at
 * submit: refusals are a 400 naming the field, and nothing is stored.
 */
describe('URL safety at submit (private addresses refused)', () => {
  const service = new TestService({ worker: false, env: { ALLOW_PRIVATE_URLS: 'false' } });
  beforeAll(() => service.start());
  afterAll(() => service.close());

  const video = (frames: string[], extra: Record<string, unknown> = {}) => ({
    project_id: 'url-safety',
    task_type: 'generate_video',
    task_data: { storyboard_images: frames, scene_description: 'A rainy street at night' },
    ...extra,
  });

  it.each([
    ['loopback', 'http://127.0.0.1:9000/frame.png', /loopback/],
    ['loopback IPv6', 'http://[::1]/frame.png', /loopback/],
    ['a loopback name', 'http://localhost/frame.png', /loopback name/],
    ['cloud metadata', 'http://169.254.169.254/latest/meta-data/iam', /link-local/],
    ['a private network', 'https://10.20.30.40/frame.png', /private/],
    ['an IPv4-mapped private address', 'http://[::ffff:192.168.1.10]/f.png', /private/],
    ['a name that does not resolve', 'http://frames.invalid/f.png', /does not resolve/],
  ])('refuses %s in task_data, naming the field', async (_what, url, why) => {
    const res = await service.http.post(
      '/tasks/submit',
      video(['https://93.184.215.14/one.png', url]),
    );
    expect(res.status).toBe(400);
    const messages = res.body.message as string[];
    expect(messages).toEqual([expect.stringContaining('task_data.storyboard_images[1]')]);
    expect(messages[0]).toMatch(why);
  });

  it('refuses a private callback_url, naming it, and never echoes its query', async () => {
    const res = await service.http.post(
      '/tasks/submit',
      video(['https://93.184.215.14/one.png'], {
        callback_url: 'http://169.254.169.254/hook?token=s3cret',
      }),
    );
    expect(res.status).toBe(400);
    expect(res.body.message).toEqual([expect.stringMatching(/^callback_url .*link-local/)]);
    expect(JSON.stringify(res.body)).not.toContain('s3cret');
  });

  it('stores nothing for a refused submit, and accepts public addresses', async () => {
    const list = await service.http.get('/projects/url-safety/tasks');
    expect(list.status).toBe(200);
    expect(list.body.pagination.total).toBe(0);

    const ok = await service.http.post(
      '/tasks/submit',
      video(['https://93.184.215.14/one.png'], { callback_url: 'https://8.8.8.8/hook' }),
    );
    expect(ok.status).toBe(201);
    expect(ok.body.status).toBe('queued');
  });
});
