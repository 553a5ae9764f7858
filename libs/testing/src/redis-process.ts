import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, waitFor } from './test-config';

/**
 * Helpers of the private Redis harnesses (cluster, sentinel): redis-server processes in a temp
 * dir, each logging to a file there (shown when a wait times out), and redis-cli for their admin
 * commands, so that a harness holds no client connection of its own.
 */

/** `count` distinct free loopback ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** A redis-server (with `--sentinel` among `args`, a sentinel) logging to `<dir>/<name>.log`. */
export function spawnRedisServer(dir: string, name: string, args: readonly string[]): ChildProcess {
  const child = spawn('redis-server', [...args, '--logfile', logFile(dir, name)], {
    cwd: dir,
    stdio: 'ignore',
  });
  // A missing binary is reported by the readiness wait (with the log); not an unhandled error.
  child.on('error', () => undefined);
  return child;
}

export function logFile(dir: string, name: string): string {
  return path.join(dir, `${name}.log`);
}

/** The last lines of a process's log, for a failure message. */
export function logTail(dir: string, name: string, lines = 15): string {
  const file = logFile(dir, name);
  if (!existsSync(file)) return `${name}: no log`;
  const text = readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  return `--- ${name}.log\n${text}`;
}

/**
 * One redis-cli command against 127.0.0.1:`port`; its reply as redis-cli prints it to a pipe (one
 * line per element). Rejects on a connection failure or an error reply.
 */
export function redisCli(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'redis-cli',
      ['-h', '127.0.0.1', '-p', String(port), ...args],
      { timeout: 15_000 },
      (err, stdout, stderr) => {
        const out = stdout.trim();
        if (err)
          reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${stderr || err.message}`));
        else if (
          /^(ERR|WRONGTYPE|NOAUTH|WRONGPASS|NOGOODSLAVE|INPROG|LOADING|MASTERDOWN|CLUSTERDOWN|\(error\))/.test(
            out,
          )
        ) {
          reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${out}`));
        } else resolve(out);
      },
    );
  });
}

/**
 * A redis-cli reply listing maps of alternating names and values (SENTINEL REPLICAS: one per
 * replica, each starting with its `name`), as one record per map.
 */
export function replyMaps(reply: string): Array<Record<string, string>> {
  const lines = reply.split('\n');
  const maps: Array<Record<string, string>> = [];
  for (let i = 0; i + 1 < lines.length; i += 2) {
    if (lines[i] === 'name' || maps.length === 0) maps.push({});
    maps[maps.length - 1][lines[i]] = lines[i + 1];
  }
  return maps;
}

/** `field:value` lines of INFO and CLUSTER INFO. */
export function infoFields(reply: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of reply.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return fields;
}

/**
 * Waits until the server on `port` answers PING (loaded and listening); fails at once, with the
 * log, if its process has exited (a port taken meanwhile, a bad option).
 */
export async function waitForPong(
  port: number,
  child: ChildProcess,
  what: string,
  explain: () => string,
): Promise<void> {
  await waitFor(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(
          `${what}: redis-server exited (${child.exitCode ?? child.signalCode})\n${explain()}`,
        );
      }
      return (await redisCli(port, 'PING').catch(() => '')) === 'PONG' ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100, what, explain },
  );
}

/** Kills a process at once (SIGKILL) and waits for its exit. */
export async function killProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}
