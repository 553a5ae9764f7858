import net from 'node:net';

/**
 * A TCP proxy in front of Redis that can lose one reply: once armed with a marker, the next
 * client→Redis chunk that contains it is passed on to Redis, and when Redis answers, the
 * client's connection is cut instead of the answer being delivered (the command ran; its reply
 * was lost). ioredis then reconnects and sends the unanswered commands again.
 */
export class ReplyDroppingProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private marker?: string;
  private dropped?: () => void;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = net.createServer((client) => this.pipe(client));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Loses the reply of the next command whose bytes contain `marker`; resolves once it has. */
  dropReplyTo(marker: string): Promise<void> {
    this.marker = marker;
    return new Promise((resolve) => (this.dropped = resolve));
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private pipe(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(client);
    this.sockets.add(upstream);
    let dropNextReply = false;
    let cutting = false;
    client.on('data', (chunk: Buffer) => {
      if (this.marker && chunk.includes(this.marker)) {
        this.marker = undefined;
        dropNextReply = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (dropNextReply) {
        // Cut a moment after the first answer, so that every command of the chunk has run.
        dropNextReply = false;
        setTimeout(() => {
          client.destroy();
          upstream.destroy();
          const done = this.dropped;
          this.dropped = undefined;
          done?.();
        }, 50);
        cutting = true;
        return;
      }
      if (!cutting) client.write(chunk);
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
