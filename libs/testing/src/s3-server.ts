import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';

// s3rver ships no types, and a .d.ts here would be left out of the app builds that type-check
// this file through the e2e harness: so the part our tests use is typed inline.
interface S3rverEvent {
  Records: Array<{ eventName: string; s3: { object: { key: string } } }>;
}
interface S3rver extends EventEmitter {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  configureBuckets: Array<{ name: string; configs: Array<string | Buffer> }>;
}) => S3rver;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as S3rverConstructor;

/** s3rver's fixed credentials: it verifies signatures made with these. */
export const TEST_S3_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** A real S3-protocol server (s3rver) on 127.0.0.1, a free port and a temp directory. */
export class TestS3Server {
  endpoint = '';
  /** Keys of objects written (PUT, multipart completion, copy), in order. */
  readonly writes: string[] = [];
  private server?: S3rver;
  private dir = '';

  constructor(readonly bucket = 'test-media') {}

  async start(): Promise<string> {
    this.dir = await mkdtemp(path.join(os.tmpdir(), 's3rver-data-'));
    this.server = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: this.dir,
      configureBuckets: [{ name: this.bucket, configs: [] }],
    });
    this.server.on('event', (event: S3rverEvent) => {
      for (const record of event.Records) {
        if (record.eventName.startsWith('ObjectCreated')) this.writes.push(record.s3.object.key);
      }
    });
    const { port } = await this.server.run();
    this.endpoint = `http://127.0.0.1:${port}`;
    return this.endpoint;
  }

  /** STORAGE_DRIVER and R2_* variables that point the service at this server. */
  env(driver: 'r2' | 's3' = 's3'): Record<string, string> {
    return {
      STORAGE_DRIVER: driver,
      R2_ENDPOINT: this.endpoint,
      R2_ACCESS_KEY: TEST_S3_CREDENTIALS.accessKeyId,
      R2_SECRET_KEY: TEST_S3_CREDENTIALS.secretAccessKey,
      R2_BUCKET_NAME: this.bucket,
      R2_REGION: 'us-east-1',
      R2_FORCE_PATH_STYLE: 'true',
    };
  }

  async stop(): Promise<void> {
    await this.server?.close();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}
