import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { AppConfig } from '@app/config';
import {
  contentTypeFor,
  isModelKey,
  StorageDriver,
  type ListedObject,
  type ObjectStream,
  type StorageBody,
  type StoredObject,
} from '../storage.driver';

/** Same shape the local driver accepts: `projects/{id}/...`, safe characters only. */
const KEY = /^projects\/[A-Za-z0-9_-]{1,64}(\/[A-Za-z0-9_.-]+)+$/;
/** SigV4 presigned URLs cannot live longer than 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;
/** Multipart part size: S3's minimum is 5 MiB; 8 MiB keeps memory at ~2 parts in flight. */
const PART_SIZE = 8 * 1024 * 1024;
const PART_QUEUE = 2;

export function isValidStorageKey(key: string): boolean {
  return KEY.test(key) && !key.split('/').some((p) => p === '.' || p === '..');
}

/**
 * Cloudflare R2 or any S3-protocol bucket. Files go up as streamed multipart uploads (never
 * fully in memory); `url()` is the public base when one is configured, else a presigned GET.
 */
@Injectable()
export class S3StorageDriver extends StorageDriver implements OnModuleDestroy {
  readonly name: string;
  private readonly logger = new Logger(S3StorageDriver.name);
  private readonly client: S3Client;
  private readonly settings: NonNullable<AppConfig['storage']['s3']>;

  constructor(private readonly config: AppConfig) {
    super();
    if (!config.storage.s3) {
      throw new Error(`STORAGE_DRIVER=${config.storage.driver} needs the R2_* settings`);
    }
    this.name = config.storage.driver;
    this.settings = config.storage.s3;
    this.client = new S3Client({
      endpoint: this.settings.endpoint,
      region: this.settings.region,
      forcePathStyle: this.settings.forcePathStyle,
      credentials: {
        accessKeyId: this.settings.accessKeyId,
        secretAccessKey: this.settings.secretAccessKey,
      },
      // R2 and most S3-compatible servers reject the SDK's default flexible checksums
      // (aws-chunked trailers); send them only where the API requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  get bucket(): string {
    return this.settings.bucket;
  }

  onModuleDestroy(): void {
    this.client.destroy();
  }

  async put(key: string, body: StorageBody, contentType: string): Promise<StoredObject> {
    this.assertKey(key);
    const started = Date.now();
    let size: number;
    if (body.kind === 'buffer') {
      size = body.data.length;
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Body: body.data,
          ContentType: contentType,
          ContentLength: size,
        }),
      );
    } else {
      size = (await stat(body.path)).size;
      const upload = new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: key,
          Body: createReadStream(body.path, { highWaterMark: 1024 * 1024 }),
          ContentType: contentType,
        },
        partSize: PART_SIZE,
        queueSize: PART_QUEUE,
        // A failed multipart upload must not leave orphaned parts billed in the bucket.
        leavePartsOnError: false,
      });
      await upload.done();
    }
    this.logger.debug(`stored ${key} (${size} bytes) in ${Date.now() - started} ms`);
    return { key, size, contentType };
  }

  async get(key: string): Promise<ObjectStream | null> {
    if (!isModelKey(key)) this.assertKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return {
        stream: out.Body as Readable,
        size: out.ContentLength ?? 0,
        contentType: out.ContentType ?? contentTypeFor(key),
      };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<ListedObject[]> {
    const folder = prefix.replace(/\/+$/, '');
    if (folder !== 'models' && !isModelKey(folder))
      throw new Error(`invalid storage prefix: ${prefix}`);
    const out: ListedObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: `${folder}/`,
          ContinuationToken: token,
        }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key && isModelKey(o.Key)) out.push({ key: o.Key, size: o.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async delete(key: string): Promise<void> {
    this.assertKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async url(key: string): Promise<string> {
    this.assertKey(key);
    if (this.settings.publicBaseUrl) return `${this.settings.publicBaseUrl}/${key}`;
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: key }), {
      expiresIn: Math.min(this.config.storage.mediaUrlTtlSeconds, MAX_PRESIGN_SECONDS),
    });
  }

  async check(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  private assertKey(key: string): void {
    if (!isValidStorageKey(key)) throw new Error(`invalid storage key: ${key}`);
  }
}

function isNotFound(err: unknown): boolean {
  if (err instanceof S3ServiceException) {
    return (
      err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata.httpStatusCode === 404
    );
  }
  return false;
}
