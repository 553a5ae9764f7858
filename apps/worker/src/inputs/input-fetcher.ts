import type { Readable } from 'node:stream';
import { Injectable, Logger } from '@nestjs/common';
import sharp from 'sharp';
import { AppConfig } from '@app/config';
import { UnsafeUrlError, UrlPolicy } from '@app/net';
import { isKeyInProject, parseS3Reference } from '@app/projects';
import { StorageDriver } from '@app/storage';
import { untilAborted } from '@app/tasks';
import type { InputSafety } from '../safety/input-safety';
import { InputFetchError } from './input-fetch.error';

/** What kind of body the caller expects; checked against Content-Type (and magic bytes). */
export type InputAccept = 'image' | 'audio' | 'any';

export interface InputFetchOptions {
  /** The task's signal: when it aborts, the fetch stops and its reason is thrown as is. */
  signal?: AbortSignal;
  /** The task_data field the URL came from, e.g. `task_data.reference_images[1]`. */
  field: string;
  accept?: InputAccept;
  /** The task's project: `s3://` inputs are read only from inside its prefix (required for them). */
  projectId?: string;
  /**
   * The run's safety check (`task.safety`): an image fetched with `accept: 'image'` is classified
   * when the task asked for `safety_check`, and an unsafe one fails the fetch with
   * ContentBlockedError. To classify several inputs in one batch, hand them to
   * `task.safety.checkInputs` together instead.
   */
  safety?: InputSafety;
}

export interface FetchedInput {
  data: Buffer;
  contentType: string;
}

const ACCEPT_HEADER: Record<InputAccept, string> = {
  image: 'image/*',
  audio: 'audio/*',
  any: '*/*',
};

/**
 * Fetches task inputs (style guides, reference images, audio) over http(s) through the UrlPolicy
 * (no private addresses unless allowed, every redirect checked), or from the service's own bucket
 * for `s3://` references inside the task's project, bounded in time and size, type checked.
 */
@Injectable()
export class InputFetcher {
  private readonly logger = new Logger(InputFetcher.name);

  constructor(
    private readonly config: AppConfig,
    private readonly storage: StorageDriver,
    private readonly urls: UrlPolicy,
  ) {}

  async fetch(url: string, opts: InputFetchOptions): Promise<FetchedInput> {
    const input = url.startsWith('s3://')
      ? await this.fetchStored(url, opts)
      : await this.fetchRemote(url, opts);
    // Outside the fetch's own error handling: a blocked image is not a fetch failure.
    if (opts.safety?.enabled && opts.accept === 'image') {
      await opts.safety.checkInputs([{ field: opts.field, data: input.data }], opts.signal);
    }
    return input;
  }

  private async fetchRemote(url: string, opts: InputFetchOptions): Promise<FetchedInput> {
    const { field, accept = 'any' } = opts;
    const parsed = parseUrl(url);
    if (!parsed) throw new InputFetchError(field, '(invalid URL)', false, 'not a valid URL');
    // Scheme, credentials and addresses are the UrlPolicy's to judge (UnsafeUrlError below).
    const shown = InputFetchError.redactUrl(url);
    opts.signal?.throwIfAborted();

    const { timeoutMs, maxBytes } = this.config.fetch;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const fail = (retryable: boolean, detail: string, status?: number, cause?: unknown) =>
      new InputFetchError(field, shown, retryable, detail, status, { cause });
    // Cancellation is the task's business (thrown as is); our own timeout is a retryable failure.
    const failFromAbortOr = (err: unknown): unknown => {
      if (opts.signal?.aborted) return opts.signal.reason;
      if (timeout.aborted) return fail(true, `timed out after ${timeoutMs} ms`, undefined, err);
      return fail(true, `network error: ${describeCause(err)}`, undefined, err);
    };

    const started = Date.now();
    let response: Awaited<ReturnType<UrlPolicy['fetch']>>;
    try {
      response = await this.urls.fetch(parsed, {
        field,
        signal,
        headers: { accept: ACCEPT_HEADER[accept] },
      });
    } catch (err) {
      // A refused address (at submit it passed: DNS changed, or a redirect led there) is final.
      if (err instanceof UnsafeUrlError)
        throw fail(false, `refused: ${err.reason}`, undefined, err);
      throw failFromAbortOr(err);
    }

    try {
      if (!response.ok) {
        const retryable =
          response.status >= 500 || response.status === 408 || response.status === 429;
        throw fail(retryable, `HTTP ${response.status}`, response.status);
      }
      const declaredType = (response.headers.get('content-type') ?? '').split(';')[0].trim();
      const contentType = declaredType.toLowerCase();
      if (!isGeneric(contentType) && !matches(contentType, accept)) {
        throw fail(false, `content type ${contentType} is not ${ACCEPT_HEADER[accept]}`);
      }
      const declaredLength = Number(response.headers.get('content-length') ?? NaN);
      if (Number.isFinite(declaredLength) && declaredLength > maxBytes) {
        throw fail(false, `${declaredLength} bytes exceeds the ${maxBytes}-byte limit`);
      }

      const data = await readBounded(response, maxBytes, () =>
        fail(false, `body exceeds the ${maxBytes}-byte limit`),
      ).catch((err: unknown) => {
        throw err instanceof InputFetchError ? err : failFromAbortOr(err);
      });
      return await this.typed(
        data,
        contentType,
        accept,
        fail,
        `${field}: fetched ${shown}`,
        started,
      );
    } finally {
      // Releases the connection when we stopped before the end of the body (no-op otherwise).
      if (response.body && !response.bodyUsed) await response.body.cancel().catch(() => undefined);
    }
  }

  /** Reads an `s3://` reference through the configured StorageDriver, inside the task's project. */
  private async fetchStored(url: string, opts: InputFetchOptions): Promise<FetchedInput> {
    const { field, accept = 'any', projectId } = opts;
    const shown = InputFetchError.redactUrl(url);
    const fail = (retryable: boolean, detail: string, status?: number, cause?: unknown) =>
      new InputFetchError(field, shown, retryable, detail, status, { cause });
    const ref = parseS3Reference(url);
    if (!ref) throw fail(false, 'not a valid s3://bucket/key reference');
    const { bucket, key } = ref;
    const s3 = this.config.storage.s3;
    if (!s3) throw fail(false, 's3:// references need object storage (STORAGE_DRIVER=r2 or s3)');
    if (bucket !== s3.bucket) throw fail(false, `only the bucket ${s3.bucket} can be read`);
    // Checked again here (not only at submit): a record could predate the rule or be edited.
    if (!projectId || !isKeyInProject(projectId, key)) {
      throw fail(false, `key is outside the task's project prefix`);
    }
    opts.signal?.throwIfAborted();

    const { timeoutMs, maxBytes } = this.config.fetch;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const failFromAbortOr = (err: unknown): unknown => {
      if (opts.signal?.aborted) return opts.signal.reason;
      if (timeout.aborted) return fail(true, `timed out after ${timeoutMs} ms`, undefined, err);
      if (err instanceof InputFetchError) return err;
      return fail(true, `storage error: ${describeCause(err)}`, undefined, err);
    };
    const started = Date.now();
    let stream: Readable | undefined;
    const onAbort = () => stream?.destroy(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const object = await untilAborted(this.storage.get(key), signal);
      if (!object) throw fail(false, 'no such object', 404);
      stream = object.stream;
      if (object.size > maxBytes) {
        throw fail(false, `${object.size} bytes exceeds the ${maxBytes}-byte limit`);
      }
      const type = object.contentType.split(';')[0].trim().toLowerCase();
      if (!isGeneric(type) && !matches(type, accept)) {
        throw fail(false, `content type ${type} is not ${ACCEPT_HEADER[accept]}`);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of stream) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        total += buf.length;
        if (total > maxBytes) throw fail(false, `body exceeds the ${maxBytes}-byte limit`);
        chunks.push(buf);
      }
      const data = Buffer.concat(chunks, total);
      return await this.typed(data, type, accept, fail, `${field}: read ${shown}`, started);
    } catch (err) {
      throw failFromAbortOr(err);
    } finally {
      signal.removeEventListener('abort', onAbort);
      stream?.destroy();
    }
  }

  /**
   * Object stores often serve uploads as octet-stream; trust the bytes then. Images are checked
   * against IMAGE_MAX_PIXELS from their header, before anything decodes them: a decompression
   * bomb (a few KB claiming gigapixels) fails here, cleanly and for good.
   */
  private async typed(
    data: Buffer,
    contentType: string,
    accept: InputAccept,
    fail: (retryable: boolean, detail: string) => InputFetchError,
    what: string,
    started: number,
  ): Promise<FetchedInput> {
    let finalType = contentType;
    if (isGeneric(contentType) && accept !== 'any') {
      const sniffed = sniff(data, accept);
      if (!sniffed) throw fail(false, `content is not ${ACCEPT_HEADER[accept]}`);
      finalType = sniffed;
    }
    if (accept === 'image') await this.checkPixels(data, fail);
    this.logger.debug(
      `${what} (${data.length} bytes, ${finalType || 'untyped'}) in ${Date.now() - started} ms`,
    );
    return { data, contentType: finalType || 'application/octet-stream' };
  }

  private async checkPixels(
    data: Buffer,
    fail: (retryable: boolean, detail: string) => InputFetchError,
  ): Promise<void> {
    const limit = this.config.fetch.imageMaxPixels;
    let width: number | undefined;
    let height: number | undefined;
    try {
      // Reads the header only; sharp's own input limit is off here so the message can be ours.
      ({ width, height } = await sharp(data, { limitInputPixels: false }).metadata());
    } catch (err) {
      throw fail(false, `not a decodable image (${(err as Error).message})`);
    }
    if (!width || !height) throw fail(false, 'not a decodable image (no dimensions)');
    if (width * height > limit) {
      throw fail(
        false,
        `image is ${width}x${height} (${(width * height).toLocaleString('en')} pixels), above the limit of ${limit.toLocaleString('en')} pixels`,
      );
    }
  }
}

async function readBounded(
  response: { body: ReadableStream<Uint8Array> | null },
  maxBytes: number,
  tooBig: () => InputFetchError,
): Promise<Buffer> {
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw tooBig();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks, total);
}

function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

function isGeneric(contentType: string): boolean {
  return (
    contentType === '' ||
    contentType === 'application/octet-stream' ||
    contentType === 'binary/octet-stream'
  );
}

function matches(contentType: string, accept: InputAccept): boolean {
  switch (accept) {
    case 'image':
      return contentType.startsWith('image/');
    case 'audio':
      return contentType.startsWith('audio/') || contentType === 'application/ogg';
    case 'any':
      return true;
  }
}

/** Magic bytes of the formats we decode, for bodies served without a useful Content-Type. */
function sniff(data: Buffer, accept: 'image' | 'audio'): string | undefined {
  const ascii = (start: number, end: number) => data.subarray(start, end).toString('latin1');
  if (accept === 'image') {
    if (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'image/jpeg';
    if (ascii(0, 8) === '\x89PNG\r\n\x1a\n') return 'image/png';
    if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP') return 'image/webp';
    if (ascii(0, 4) === 'GIF8') return 'image/gif';
    if (ascii(4, 8) === 'ftyp' && /^(avif|avis|heic|heix|mif1)$/.test(ascii(8, 12)))
      return 'image/avif';
    if (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*') return 'image/tiff';
    return undefined;
  }
  if (ascii(0, 3) === 'ID3' || (data[0] === 0xff && ((data[1] ?? 0) & 0xe0) === 0xe0))
    return 'audio/mpeg';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WAVE') return 'audio/wav';
  if (ascii(0, 4) === 'OggS') return 'audio/ogg';
  if (ascii(0, 4) === 'fLaC') return 'audio/flac';
  if (ascii(4, 8) === 'ftyp') return 'audio/mp4';
  return undefined;
}

function describeCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
