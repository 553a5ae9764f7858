import net from 'node:net';
import { parseCommands, type SentCommand } from './counting-redis.proxy';

/** Told of every write a client socket makes to the watched port. */
export type WriteListener = (socket: net.Socket, commands: SentCommand[]) => void;

/**
 * Round trips as the clients make them: every `write` of a socket of this process connected to
 * `port` (the counting proxy), with the commands in it. ioredis writes one command, or one whole
 * pipeline or MULTI block, per call, and waits for its answer: one round trip each, however the
 * kernel later merges them on the wire. Bench-only: patches net.Socket.prototype.write once.
 */
export class RedisWritesHook {
  private static listener?: { port: number; onWrite: WriteListener };
  private static installed = false;

  /** Watches writes to `port` (one port at a time); `undefined` stops. */
  static watch(watched?: { port: number; onWrite: WriteListener }): void {
    RedisWritesHook.listener = watched;
    if (RedisWritesHook.installed) return;
    RedisWritesHook.installed = true;
    const write = net.Socket.prototype.write;
    net.Socket.prototype.write = function (this: net.Socket, ...args: unknown[]): boolean {
      const l = RedisWritesHook.listener;
      const [chunk] = args;
      if (
        l &&
        this.remotePort === l.port &&
        (typeof chunk === 'string' || Buffer.isBuffer(chunk))
      ) {
        l.onWrite(this, parseCommands(Buffer.from(chunk)));
      }
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    };
  }
}
