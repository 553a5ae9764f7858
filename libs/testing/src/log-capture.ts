import { Writable } from 'node:stream';

/** A pino destination for tests: every JSON line written, parsed, in order. */
export class LogCapture extends Writable {
  readonly lines: Record<string, any>[] = [];

  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString().split('\n').filter(Boolean))
      this.lines.push(JSON.parse(line) as Record<string, any>);
    done();
  }
}
