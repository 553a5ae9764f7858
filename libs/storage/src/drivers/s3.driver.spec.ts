import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { TestS3Server } from '@app/testing';
import { S3StorageDriver } from './s3.driver';

const BUCKET = 'driver-spec-media';

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

describe('S3StorageDriver (against s3rver)', () => {
  const s3 = new TestS3Server(BUCKET);
  let dir: string;
  let driver: S3StorageDriver;
  const config = (env: Record<string, string> = {}) =>
    AppConfig.fromEnv({
      API_KEYS: 'k',
      ...s3.env(),
      MEDIA_URL_TTL: '600',
      ...env,
    });

  beforeAll(async () => {
    Logger.overrideLogger(false);
    dir = await mkdtemp(path.join(os.tmpdir(), 's3-driver-spec-'));
    await s3.start();
    driver = new S3StorageDriver(config());
  });

  afterAll(async () => {
    driver.onModuleDestroy();
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
    Logger.overrideLogger(new Logger());
  });

  it('puts a buffer, gets it back with its type and size, deletes it', async () => {
    const key = 'projects/p1/image/t1/output.jpg';
    const data = randomBytes(1000);
    await expect(driver.put(key, { kind: 'buffer', data }, 'image/jpeg')).resolves.toEqual({
      key,
      size: 1000,
      contentType: 'image/jpeg',
    });
    const got = await driver.get(key);
    expect(got).toMatchObject({ size: 1000, contentType: 'image/jpeg' });
    expect((await readAll(got!.stream)).equals(data)).toBe(true);
    await driver.delete(key);
    await expect(driver.get(key)).resolves.toBeNull();
  });

  it('streams a file larger than one part as a multipart upload', async () => {
    const file = path.join(dir, 'big.bin');
    const data = randomBytes(11 * 1024 * 1024);
    await writeFile(file, data);
    const key = 'projects/p1/video/t2/output.mp4';
    const stored = await driver.put(key, { kind: 'file', path: file }, 'video/mp4');
    expect(stored.size).toBe(data.length);
    const got = await driver.get(key);
    expect(got?.size).toBe(data.length);
    expect((await readAll(got!.stream)).equals(data)).toBe(true);
  }, 60_000);

  it('hands out a presigned GET that downloads the object without credentials', async () => {
    const key = 'projects/p1/audio/t3/output.mp3';
    const data = randomBytes(64);
    await driver.put(key, { kind: 'buffer', data }, 'audio/mpeg');
    const url = await driver.url(key);
    expect(url).toContain(`/${BUCKET}/${key}?`);
    expect(url).toContain('X-Amz-Expires=600');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    // s3rver does not check presigned signatures, so check the shape the client relies on.
    expect(url).toMatch(/X-Amz-Signature=[0-9a-f]{64}/);
    expect(url).toContain('X-Amz-Credential=S3RVER%2F');
  });

  it('uses the public base URL when one is configured', async () => {
    const pub = new S3StorageDriver(config({ R2_PUBLIC_BASE_URL: 'https://media.example.com/' }));
    await expect(pub.url('projects/p1/image/t1/output.jpg')).resolves.toBe(
      'https://media.example.com/projects/p1/image/t1/output.jpg',
    );
    pub.onModuleDestroy();
  });

  it.each([
    'other/p1/x.jpg',
    'projects/p1',
    'projects/p1/../p2/x.jpg',
    'projects/p1/./x.jpg',
    '/projects/p1/x.jpg',
    'projects/p1//x.jpg',
    'projects/p 1/x.jpg',
    'projects/p1/a%2Fb.jpg',
  ])('refuses the key %s', async (key) => {
    await expect(driver.put(key, { kind: 'buffer', data: Buffer.alloc(1) }, 'x/y')).rejects.toThrow(
      /invalid storage key/,
    );
    await expect(driver.get(key)).rejects.toThrow(/invalid storage key/);
    await expect(driver.url(key)).rejects.toThrow(/invalid storage key/);
  });

  it('checks the bucket, and fails the check for a bucket that does not exist', async () => {
    await expect(driver.check()).resolves.toBeUndefined();
    const missing = new S3StorageDriver(config({ R2_BUCKET_NAME: 'no-such-bucket' }));
    await expect(missing.check()).rejects.toThrow();
    missing.onModuleDestroy();
  });
});
