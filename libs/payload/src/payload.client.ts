import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import {
  BrokenCircuitError,
  ConsecutiveBreaker,
  ExponentialBackoff,
  TimeoutStrategy,
  circuitBreaker,
  handleWhen,
  retry,
  timeout,
  wrap,
  type IPolicy,
} from 'cockatiel';
import { AppConfig } from '@app/config';
import type { MediaKind } from '@app/projects';
import { isDuplicateTaskIdError, isRetryableStatus, PayloadError } from './payload.errors';

/**
 * Seed 000: the media types the main app's media collection knows; `animation` and `analysis`
 * (a JSON report such as analyze_character's) are ours, and need options of that select field.
 */
export type PayloadMediaType =
  'video_segment' | 'character_design' | 'dialogue_audio' | 'animation' | 'analysis';

const PAYLOAD_MEDIA_TYPES: Record<MediaKind, PayloadMediaType> = {
  video: 'video_segment',
  image: 'character_design',
  audio: 'dialogue_audio',
  animation: 'animation',
  analysis: 'analysis',
};

/** The Payload media type of a task's media kind (`image` → `character_design`, ...). */
export function payloadMediaType(kind: MediaKind): PayloadMediaType {
  return PAYLOAD_MEDIA_TYPES[kind];
}

export interface PayloadMediaUpload {
  taskId: string;
  projectId: string;
  mediaType: PayloadMediaType;
  filename: string;
  contentType: string;
  /** Opens the bytes; called once per HTTP attempt, so a retry streams from the start again. */
  open: () => Promise<Readable | Buffer>;
  generationMetadata: Record<string, unknown>;
  mediaUrl: string;
}

export interface RegisteredMedia {
  id: string;
  /** false when a document for this task already existed (an earlier attempt made it). */
  created: boolean;
}

/** Resilience settings; the defaults suit production, tests shrink them. */
export interface PayloadResilience {
  /** Tries per call (first try included) for retryable failures. */
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Consecutive failures that open the circuit. */
  breakerThreshold: number;
  /** How long the circuit stays open before one trial request is let through. */
  halfOpenAfterMs: number;
}

export const PAYLOAD_RESILIENCE = Symbol('PAYLOAD_RESILIENCE');
export const DEFAULT_PAYLOAD_RESILIENCE: PayloadResilience = {
  maxAttempts: 3,
  initialBackoffMs: 250,
  maxBackoffMs: 2_000,
  breakerThreshold: 5,
  halfOpenAfterMs: 30_000,
};

interface PayloadDoc {
  id: string | number;
  [field: string]: unknown;
}

/**
 * PayloadCMS v3 REST client for the main app's media collection (shared/STACK.md): multipart
 * upload (`file` + `_payload` JSON), lookup by task id, PATCH. Every call runs under a per-try
 * timeout, retries with exponential backoff, and a circuit breaker so an outage fails fast.
 */
@Injectable()
export class PayloadClient {
  private readonly logger = new Logger(PayloadClient.name);
  private readonly settings: NonNullable<AppConfig['payload']>;
  private readonly policy: IPolicy;
  /** False without PAYLOAD_API_URL: callers skip registration. */
  readonly enabled: boolean;

  constructor(
    config: AppConfig,
    @Optional() @Inject(PAYLOAD_RESILIENCE) resilience?: PayloadResilience,
  ) {
    this.settings = config.payload ?? {
      apiUrl: '',
      mediaCollection: 'media',
      authScheme: 'api-key',
      authCollection: 'users',
      timeoutMs: 30_000,
    };
    const r = resilience ?? DEFAULT_PAYLOAD_RESILIENCE;
    const transient = handleWhen((err) => err instanceof PayloadError && err.retryable);
    const breaker = circuitBreaker(transient, {
      halfOpenAfter: r.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(r.breakerThreshold),
    });
    breaker.onBreak(() => this.logger.warn('Payload circuit opened: calls fail fast for a while'));
    breaker.onReset(() => this.logger.log('Payload circuit closed again'));
    const retries = retry(transient, {
      maxAttempts: r.maxAttempts - 1,
      backoff: new ExponentialBackoff({
        initialDelay: r.initialBackoffMs,
        maxDelay: r.maxBackoffMs,
      }),
    });
    // Retry outermost: an open circuit throws BrokenCircuitError, which the retry does not handle.
    this.policy = wrap(
      retries,
      breaker,
      timeout(this.settings.timeoutMs, TimeoutStrategy.Cooperative),
    );
    this.enabled = config.payload !== null;
  }

  /**
   * Uploads the media as a document of the media collection and returns its id. Idempotent per
   * task: every try first looks for a document with this task_id (the fast path of a retry after a
   * lost response), and since that lookup and the create are two requests, the collection's
   * `task_id` is unique (README): when two runs of one task (a takeover during a slow
   * registration) both find nothing and both create, Payload refuses the second create and the
   * loser answers the winner's document with `created: false`.
   */
  async registerMedia(upload: PayloadMediaUpload, signal?: AbortSignal): Promise<RegisteredMedia> {
    return this.run(signal, async (trySignal) => {
      const existing = await this.findOnce(upload.taskId, trySignal);
      if (existing !== null) return { id: existing, created: false };
      try {
        return { id: await this.createOnce(upload, trySignal), created: true };
      } catch (err) {
        if (!isDuplicateTaskIdError(err)) throw err;
        const winner = await this.findOnce(upload.taskId, trySignal);
        // A 400 naming task_id with no document behind it is not a duplicate: keep its error.
        if (winner === null) throw err;
        this.logger.log(
          { task_id: upload.taskId, project_id: upload.projectId, payload_media_id: winner },
          'another run registered it first',
        );
        return { id: winner, created: false };
      }
    });
  }

  /** The id of the media document made for this task, or null. */
  async findMediaByTaskId(taskId: string, signal?: AbortSignal): Promise<string | null> {
    return this.run(signal, (trySignal) => this.findOnce(taskId, trySignal));
  }

  /**
   * Whether a media document points at this task's stored media: `true` (keep the object),
   * `false` (no document, or Payload not configured: nothing can point at it) or `'unknown'` (the
   * lookup failed or `signal` aborted: keep the object, an orphan file is cheaper than a document
   * whose media is gone). A run cancelled during registration deletes its stored media only when
   * this answers `false`. Pass a signal of its own (e.g. `AbortSignal.timeout(...)`), not the
   * cancelled run's, which is already aborted.
   */
  async mediaIsRegistered(taskId: string, signal?: AbortSignal): Promise<boolean | 'unknown'> {
    if (!this.enabled) return false;
    try {
      return (await this.findMediaByTaskId(taskId, signal)) !== null;
    } catch (err) {
      this.logger.warn(
        { task_id: taskId },
        `could not tell whether Payload has its media document: ${describeError(err)}`,
      );
      return 'unknown';
    }
  }

  /** PATCHes fields of a media document (e.g. embeddings); returns the updated document. */
  async updateMedia(
    id: string,
    patch: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    return this.run(signal, (trySignal) =>
      this.request(
        'PATCH',
        `/${this.settings.mediaCollection}/${encodeURIComponent(id)}`,
        trySignal,
        JSON.stringify(patch),
        'application/json',
      ),
    );
  }

  /** One multipart create; the document's id. */
  private async createOnce(upload: PayloadMediaUpload, signal: AbortSignal): Promise<string> {
    const fields = {
      project_id: upload.projectId,
      media_type: upload.mediaType,
      agent_generated: true,
      generation_metadata: upload.generationMetadata,
      task_id: upload.taskId,
      media_url: upload.mediaUrl,
    };
    const source = await upload.open();
    const boundary = `----payload-upload-${randomBytes(16).toString('hex')}`;
    try {
      const doc = await this.request(
        'POST',
        `/${this.settings.mediaCollection}`,
        signal,
        multipartBody(boundary, fields, upload.filename, upload.contentType, source),
        `multipart/form-data; boundary=${boundary}`,
      );
      return docId(doc);
    } finally {
      // A failed try may stop before reading the file: release its stream (S3 socket, fd).
      if (source instanceof Readable) source.destroy();
    }
  }

  private async findOnce(taskId: string, signal: AbortSignal): Promise<string | null> {
    const query = new URLSearchParams({
      'where[task_id][equals]': taskId,
      limit: '1',
      depth: '0',
    });
    const body = (await this.request(
      'GET',
      `/${this.settings.mediaCollection}?${query.toString()}`,
      signal,
    )) as { docs?: PayloadDoc[] };
    const doc = body.docs?.[0];
    return doc ? docId(doc) : null;
  }

  /** Runs one call under the policy; the caller's cancel is rethrown as is. */
  private async run<T>(
    signal: AbortSignal | undefined,
    fn: (s: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (!this.enabled) throw new PayloadError('Payload is not configured (PAYLOAD_API_URL)', false);
    signal?.throwIfAborted();
    try {
      return await this.policy.execute(({ signal: trySignal }) => fn(trySignal), signal);
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (err instanceof BrokenCircuitError) {
        throw new PayloadError(
          'Payload is unavailable (circuit open after repeated failures)',
          true,
          undefined,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }

  private async request(
    method: 'GET' | 'POST' | 'PATCH',
    path: string,
    signal: AbortSignal,
    body?: string | AsyncIterable<Uint8Array>,
    contentType?: string,
  ): Promise<Record<string, unknown>> {
    const shown = `${method} ${path.split('?')[0]}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (contentType) headers['content-type'] = contentType;
    const auth = this.authorization();
    if (auth) headers.authorization = auth;
    let response: Response;
    try {
      const init: RequestInit & { duplex?: 'half' } = { method, headers, signal };
      if (typeof body === 'string') init.body = body;
      else if (body) {
        init.body = Readable.toWeb(Readable.from(body)) as ReadableStream;
        init.duplex = 'half';
      }
      response = await fetch(`${this.settings.apiUrl}${path}`, init);
    } catch (err) {
      throw new PayloadError(
        signal.aborted
          ? `Payload ${shown} timed out after ${this.settings.timeoutMs} ms`
          : `Payload ${shown} network error: ${describeCause(err)}`,
        true,
        undefined,
        { cause: err },
      );
    }
    let text: string;
    try {
      text = await response.text();
    } catch (err) {
      throw new PayloadError(
        `Payload ${shown} network error reading the response`,
        true,
        undefined,
        {
          cause: err,
        },
      );
    }
    if (!response.ok) {
      const detail = errorDetail(text);
      throw new PayloadError(
        `Payload ${shown} answered HTTP ${response.status}${detail.text}`,
        isRetryableStatus(response.status),
        response.status,
        { invalidFields: detail.fields },
      );
    }
    try {
      const parsed = JSON.parse(text) as Record<string, unknown>;
      // POST/PATCH answer {doc, message}; GET of a collection answers {docs, ...}.
      return (parsed.doc as Record<string, unknown> | undefined) ?? parsed;
    } catch {
      throw new PayloadError(
        `Payload ${shown} answered a body that is not JSON`,
        false,
        response.status,
      );
    }
  }

  private authorization(): string | undefined {
    const { apiKey, authScheme, authCollection } = this.settings;
    if (!apiKey) return undefined;
    switch (authScheme) {
      case 'api-key':
        return `${authCollection} API-Key ${apiKey}`;
      case 'bearer':
        return `Bearer ${apiKey}`;
    }
  }
}

/** multipart/form-data streamed part by part: `_payload` JSON first, then `file`. */
async function* multipartBody(
  boundary: string,
  fields: Record<string, unknown>,
  filename: string,
  contentType: string,
  source: Readable | Buffer,
): AsyncGenerator<Uint8Array> {
  const safeName = filename.replace(/["\r\n\\]/g, '_');
  yield Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="_payload"\r\n` +
      `Content-Type: application/json\r\n\r\n${JSON.stringify(fields)}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${safeName}"\r\n` +
      `Content-Type: ${contentType}\r\n\r\n`,
  );
  if (Buffer.isBuffer(source)) yield source;
  else for await (const chunk of source) yield chunk as Uint8Array;
  yield Buffer.from(`\r\n--${boundary}--\r\n`);
}

function docId(doc: Record<string, unknown>): string {
  const id = doc.id;
  if (typeof id !== 'string' && typeof id !== 'number') {
    throw new PayloadError('Payload answered a document without an id', false);
  }
  return String(id);
}

interface PayloadErrorBody {
  errors?: Array<{
    message?: string;
    /** Mongoose-style entries. */
    field?: string;
    /** A ValidationError's field errors. */
    data?: { errors?: Array<{ path?: string; message?: string }> };
  }>;
}

/**
 * Payload's error bodies are {errors: [{message, data?: {errors: [{path, message}]}}]}: a short,
 * key-free excerpt of the messages and the fields they name.
 */
function errorDetail(text: string): { text: string; fields: string[] } {
  try {
    const errors = (JSON.parse(text) as PayloadErrorBody).errors ?? [];
    const messages = errors.map((e) => e.message).filter(Boolean);
    const fields = errors.flatMap((e) => [
      ...(e.field ? [e.field] : []),
      ...(e.data?.errors ?? []).flatMap((f) => (f.path ? [f.path] : [])),
    ]);
    return { text: messages.length > 0 ? `: ${messages.join('; ').slice(0, 300)}` : '', fields };
  } catch {
    // Not JSON (a proxy's HTML error page): the status says enough.
    return { text: '', fields: [] };
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function describeCause(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return cause.code;
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
