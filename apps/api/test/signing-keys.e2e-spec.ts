import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { LocalStorageDriver } from '@app/storage';
import { TestService } from './support/service.harness';

/**
 * Issue 12: without MEDIA_URL_SECRET the media URL key is derived from the API keys and a salt
 * the deployment keeps in Redis. API replicas of one deployment (one REDIS_PREFIX) verify each
 * other's URLs; another deployment with the same API keys does not.
 */
describe('derived signing keys across API replicas', () => {
  const media = mkdtempSync(path.join(os.tmpdir(), 'ams-shared-media-'));
  const prefix = `test-${randomBytes(4).toString('hex')}`;
  const services: TestService[] = [];
  const start = async (env: Record<string, string>) => {
    const service = new TestService({ worker: false, env: { STORAGE_LOCAL_DIR: media, ...env } });
    services.push(service);
    return service.start();
  };

  afterAll(async () => {
    for (const service of services) await service.close();
  });

  it('a URL signed by one replica opens on another, not on another deployment', async () => {
    const [a, b, other] = await Promise.all([
      start({ REDIS_PREFIX: prefix }),
      start({ REDIS_PREFIX: prefix }),
      start({}),
    ]);
    const driverA = a.api.get(LocalStorageDriver);
    const key = 'projects/shared_project/image/task-1/output.png';
    await driverA.put(key, { kind: 'buffer', data: Buffer.from('png bytes') }, 'image/png');
    const signed = new URL(await driverA.url(key));
    const on = (service: TestService) =>
      fetch(`http://127.0.0.1:${service.config.api.port}${signed.pathname}${signed.search}`);

    const fromA = await on(a);
    expect(fromA.status).toBe(200);
    expect(await fromA.text()).toBe('png bytes');
    expect((await on(b)).status).toBe(200);
    expect((await on(other)).status).toBe(403);
    expect(a.config.storage.mediaUrlSecret).toBeNull();
  });
});
