import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './test-config';

/**
 * A redis-server of one test alone, on a free loopback port, for the test to stop and start
 * again (outages, restarts). With `persistent`, an append-only file fsynced on every write keeps
 * its data across a restart (a crash of Redis loses nothing acknowledged). `args` add options
 * (a small `--maxmemory` with `noeviction` makes Redis refuse writes, as a full one does).
 */
export class PrivateRedisServer {
  private child?: ChildProcess;
  private readonly dir = mkdtempSync(path.join(os.tmpdir(), 'test-redis-'));
  port = 0;

  /** `args`: more redis-server options, e.g. `['--maxmemory', '20mb']`. */
  constructor(private readonly opts: { persistent?: boolean; args?: readonly string[] } = {}) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it (on the same port as before after a stop) and waits until it accepts connections. */
  async start(): Promise<void> {
    this.port ||= await freePort();
    const persistence = this.opts.persistent
      ? ['--appendonly', 'yes', '--appendfsync', 'always']
      : ['--appendonly', 'no'];
    this.child = spawn(
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        ...persistence,
        ...(this.opts.args ?? []),
      ],
      { cwd: this.dir, stdio: 'ignore' },
    );
    const port = this.port;
    await waitFor(
      async () =>
        (await new Promise<boolean>((resolve) => {
          const socket = connect(port, '127.0.0.1');
          socket.once('connect', () => (socket.destroy(), resolve(true)));
          socket.once('error', () => resolve(false));
        })) || undefined,
      { timeoutMs: 5000, what: 'redis-server to listen' },
    );
  }

  /** Kills it at once (SIGKILL: an outage, not a clean shutdown). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
}
