import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StoredPayloadDoc {
  id: number;
  /** The fields of `_payload`, as Payload stores them. */
  fields: Record<string, unknown>;
  file: { filename: string; mimeType: string; data: Buffer };
  patches: Array<Record<string, unknown>>;
}

export interface SeenPayloadRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  status: number;
}

/**
 * A PayloadCMS v3 stand-in on 127.0.0.1 for one upload collection: multipart POST (binary in
 * `file`, other fields as the JSON string `_payload`, parsed by a real multipart parser), GET with
 * `where[task_id][equals]`, PATCH by id; checks the Authorization header; can be taken down.
 * `task_id` is unique, as the main app's collection must declare it: a second create for a task
 * gets Payload's answer to a unique-index violation (400 ValidationError naming `task_id`).
 */
export class TestPayloadServer {
  readonly docs: StoredPayloadDoc[] = [];
  readonly requests: SeenPayloadRequest[] = [];
  /** While > 0, requests answer `downStatus` (and count down). Infinity: down until told. */
  downFor = 0;
  downStatus = 503;
  /**
   * While > 1, creates are held until this many have arrived, then run in arrival order: two runs
   * of a task that both looked up and found nothing create at the same time.
   */
  holdCreatesUntil = 0;
  /** Awaited before each create is answered (a test holds registration while it looks). */
  beforeCreate?: () => Promise<void>;
  private heldCreates: Array<() => void> = [];
  private server?: http.Server;
  private nextId = 1;

  constructor(
    readonly collection = 'media',
    readonly expectedAuthorization?: string,
  ) {}

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      void this.handle(req, res).catch((err: Error) => {
        this.reply(req, res, 500, { errors: [{ message: err.message }] });
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/api`;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((r) => this.server!.close(r));
  }

  private reply(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    status: number,
    body: unknown,
  ): void {
    this.requests.push({
      method: req.method ?? '',
      path: (req.url ?? '').split('?')[0],
      authorization: req.headers.authorization,
      status,
    });
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    if (this.downFor > 0) {
      this.downFor -= 1;
      return this.reply(req, res, this.downStatus, { errors: [{ message: 'down' }] });
    }
    if (this.expectedAuthorization && req.headers.authorization !== this.expectedAuthorization) {
      return this.reply(req, res, 401, {
        errors: [{ message: 'You are not allowed to perform this action.' }],
      });
    }
    const url = new URL(req.url ?? '/', 'http://x');
    const base = `/api/${this.collection}`;
    if (req.method === 'GET' && url.pathname === base) {
      const taskId = url.searchParams.get('where[task_id][equals]');
      const limit = Number(url.searchParams.get('limit') ?? 10);
      const docs = this.docs
        .filter((d) => taskId === null || d.fields.task_id === taskId)
        .slice(0, limit)
        .map((d) => this.view(d));
      return this.reply(req, res, 200, { docs, totalDocs: docs.length, limit, page: 1 });
    }
    if (req.method === 'POST' && url.pathname === base) {
      await this.holdCreate();
      await this.beforeCreate?.();
      // Payload reads multipart with a real parser; so do we (undici's FormData).
      const form = await new Response(raw, {
        headers: { 'content-type': req.headers['content-type'] ?? '' },
      }).formData();
      const file = form.get('file');
      const payload = form.get('_payload');
      if (!(file instanceof Blob) || typeof payload !== 'string') {
        return this.reply(req, res, 400, { errors: [{ message: 'No files were uploaded.' }] });
      }
      const fields = JSON.parse(payload) as Record<string, unknown>;
      const data = Buffer.from(await file.arrayBuffer());
      // Check and insert in one synchronous step, as a unique index does.
      if (this.docs.some((d) => d.fields.task_id === fields.task_id)) {
        // Payload v3's ValidationError from the database adapter's unique-index violation.
        return this.reply(req, res, 400, {
          errors: [
            {
              name: 'ValidationError',
              data: {
                collection: this.collection,
                errors: [{ message: 'Value must be unique', path: 'task_id' }],
              },
              message: 'The following field is invalid: task_id',
            },
          ],
        });
      }
      const doc: StoredPayloadDoc = {
        id: this.nextId++,
        fields,
        file: {
          filename: file.name,
          mimeType: file.type,
          data,
        },
        patches: [],
      };
      this.docs.push(doc);
      return this.reply(req, res, 201, { doc: this.view(doc), message: 'Successfully created.' });
    }
    const byId = new RegExp(`^${base}/(\\d+)$`).exec(url.pathname);
    if (req.method === 'PATCH' && byId) {
      const doc = this.docs.find((d) => d.id === Number(byId[1]));
      if (!doc) return this.reply(req, res, 404, { errors: [{ message: 'Not Found' }] });
      const patch = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      doc.patches.push(patch);
      Object.assign(doc.fields, patch);
      return this.reply(req, res, 200, { doc: this.view(doc), message: 'Updated successfully.' });
    }
    return this.reply(req, res, 404, { errors: [{ message: 'Not Found' }] });
  }

  private async holdCreate(): Promise<void> {
    if (this.holdCreatesUntil <= 1) return;
    const arrived = new Promise<void>((resolve) => this.heldCreates.push(resolve));
    if (this.heldCreates.length >= this.holdCreatesUntil) {
      this.holdCreatesUntil = 0;
      for (const release of this.heldCreates.splice(0)) release();
    }
    await arrived;
  }

  private view(doc: StoredPayloadDoc): Record<string, unknown> {
    return {
      id: doc.id,
      ...doc.fields,
      filename: doc.file.filename,
      mimeType: doc.file.mimeType,
      filesize: doc.file.data.length,
    };
  }
}
