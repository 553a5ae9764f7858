import { randomBytes } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { testConfig, testSigningKeys } from '@app/testing';
import { LocalStorageDriver } from './local.driver';

async function read(driver: LocalStorageDriver, key: string): Promise<Buffer | null> {
  const object = await driver.get(key);
  if (!object) return null;
  const chunks: Buffer[] = [];
  for await (const chunk of object.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('LocalStorageDriver', () => {
  const config = testConfig();
  const driver = new LocalStorageDriver(config, testSigningKeys(config));
  const root = config.storage.localDir;

  afterAll(() => rm(root, { recursive: true, force: true }));

  it.each([
    ['a small buffer (written synchronously)', 2],
    ['a large buffer (written asynchronously)', 3 * 1024 * 1024],
  ])('stores %s whole, with its size, and leaves no temporary file', async (_what, size) => {
    const data = randomBytes(size);
    const key = `projects/p1/video/t-${size}/output.mp4`;
    await expect(driver.put(key, { kind: 'buffer', data }, 'video/mp4')).resolves.toEqual({
      key,
      size,
      contentType: 'video/mp4',
    });
    expect((await read(driver, key))?.equals(data)).toBe(true);
    expect(await driver.get(key)).toMatchObject({ size, contentType: 'video/mp4' });
    expect(await readdir(path.join(root, path.dirname(key)))).toEqual(['output.mp4']);
  });

  it('stores a file by copying it, and replaces what the key held', async () => {
    const source = path.join(root, 'render.tmp');
    await writeFile(source, 'second version');
    const key = 'projects/p1/audio/t2/output.mp3';
    await driver.put(key, { kind: 'buffer', data: Buffer.from('first') }, 'audio/mpeg');
    await expect(driver.put(key, { kind: 'file', path: source }, 'audio/mpeg')).resolves.toEqual({
      key,
      size: 14,
      contentType: 'audio/mpeg',
    });
    expect((await read(driver, key))?.toString()).toBe('second version');
    expect(await readFile(source, 'utf8')).toBe('second version');
  });

  it('refuses keys outside projects/ or with dot segments, writing nothing', async () => {
    for (const key of ['other/p1/a.png', 'projects/p1/../../etc/x', 'projects/../x/y.png']) {
      await expect(
        driver.put(key, { kind: 'buffer', data: Buffer.from('x') }, 'image/png'),
      ).rejects.toThrow('invalid storage key');
    }
    expect(await readdir(root)).not.toContain('other');
  });

  it('answers null for a missing key and deletes quietly', async () => {
    expect(await driver.get('projects/p1/image/none/output.png')).toBeNull();
    await expect(driver.delete('projects/p1/image/none/output.png')).resolves.toBeUndefined();
  });
});
