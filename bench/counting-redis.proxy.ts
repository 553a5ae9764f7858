import net from 'node:net';

/** One command as a client sent it: its name, its first arguments (as text) and how many it had. */
export interface SentCommand {
  name: string;
  /** The first ARGS_KEPT arguments after the name, each cut at ARG_CHARS_KEPT characters. */
  args: string[];
  /** How many arguments it had (after the name). */
  argc: number;
}

/** What the proxy reports, per client connection (numbered from 1). */
export interface ProxyListener {
  /**
   * One read of a client's bytes, with the commands that ended in it (a command spanning reads
   * is listed in the read that ends it). Reads are not the client's writes: writes that arrive
   * while this process is busy are read as one (round trips are counted by RedisWritesHook).
   */
  clientWrite(conn: number, commands: SentCommand[], bytes: number): void;
  /** One read of Redis's answer bytes to that client. */
  serverWrite(conn: number, bytes: number): void;
}

const ARGS_KEPT = 8;
const ARG_CHARS_KEPT = 200;
const CR = 0x0d;

/**
 * A TCP proxy in front of Redis that parses what clients send (RESP arrays of bulk strings, as
 * ioredis writes them) and reports every command and byte: the apps' side of the traffic, apart
 * from anything else that uses the same Redis. Bytes pass unchanged. Bench-only.
 */
export class CountingRedisProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private connections = 0;
  port = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly listener: ProxyListener,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Client connections accepted so far. */
  get accepted(): number {
    return this.connections;
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => this.pipe(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private pipe(client: net.Socket): void {
    const conn = ++this.connections;
    const upstream = net.connect(this.target.port, this.target.host);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const parser = new RequestParser();
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      this.listener.clientWrite(conn, parser.push(chunk), chunk.length);
    });
    upstream.on('data', (chunk: Buffer) => {
      client.write(chunk);
      this.listener.serverWrite(conn, chunk.length);
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('error', close);
    upstream.on('error', close);
  }
}

/** The commands in `buf` (complete ones; a partial one at the end is left out). */
export function parseCommands(buf: Buffer): SentCommand[] {
  const out: SentCommand[] = [];
  let offset = 0;
  for (;;) {
    const parsed = parseCommand(buf, offset);
    if (!parsed) return out;
    out.push(parsed.command);
    offset = parsed.next;
  }
}

/** Incremental parser of a client's request stream (RESP arrays; inline commands too). */
class RequestParser {
  private buffer: Buffer = Buffer.alloc(0);

  /** Adds bytes; returns the commands they complete. */
  push(chunk: Buffer): SentCommand[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const out: SentCommand[] = [];
    let offset = 0;
    for (;;) {
      const parsed = parseCommand(this.buffer, offset);
      if (!parsed) break;
      out.push(parsed.command);
      offset = parsed.next;
    }
    this.buffer = offset === this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(offset);
    return out;
  }
}

/** The line at `offset` (without CRLF) and where the next one starts, or null if incomplete. */
function line(buf: Buffer, offset: number): { text: string; next: number } | null {
  const end = buf.indexOf(CR, offset);
  if (end < 0 || end + 1 >= buf.length) return null;
  return { text: buf.toString('latin1', offset, end), next: end + 2 };
}

function parseCommand(buf: Buffer, offset: number): { command: SentCommand; next: number } | null {
  if (offset >= buf.length) return null;
  const head = line(buf, offset);
  if (!head) return null;
  if (!head.text.startsWith('*')) {
    // Inline command (redis-cli style): words on one line.
    const [name = '', ...args] = head.text.trim().split(/\s+/);
    return { command: { name: name.toLowerCase(), args, argc: args.length }, next: head.next };
  }
  const count = Number(head.text.slice(1));
  let pos = head.next;
  const words: string[] = [];
  for (let i = 0; i < count; i++) {
    const size = line(buf, pos);
    if (!size) return null;
    const len = Number(size.text.slice(1));
    const start = size.next;
    if (start + len + 2 > buf.length) return null;
    if (i <= ARGS_KEPT) {
      // An EVAL's body whole: its SHA-1 names the script.
      const keep = i === 1 && /^eval$/i.test(words[0]) ? len : Math.min(len, ARG_CHARS_KEPT);
      words.push(buf.toString('latin1', start, start + keep));
    }
    pos = start + len + 2;
  }
  const [name = '', ...args] = words;
  return { command: { name: name.toLowerCase(), args, argc: count - 1 }, next: pos };
}
