import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ServedFile {
  body: Buffer;
  contentType: string;
  status?: number;
}

/** A real HTTP server on 127.0.0.1 serving fixed files; counts the requests per path. */
export class TestFileServer {
  readonly hits = new Map<string, number>();
  private server?: http.Server;
  private files = new Map<string, ServedFile>();

  set(path: string, file: ServedFile): void {
    this.files.set(path, file);
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
      const file = this.files.get(path);
      if (!file) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      res
        .writeHead(file.status ?? 200, {
          'content-type': file.contentType,
          'content-length': file.body.length,
        })
        .end(file.body);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise((r) => this.server!.close(r));
  }
}
