import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  freePorts,
  infoFields,
  killProcess,
  logTail,
  redisCli,
  replyMaps,
  spawnRedisServer,
  waitForPong,
} from './redis-process';
import { waitFor } from './test-config';

/** Sentinel's timings here: a primary silent for 2 s is down (short, yet no false alarm on a busy machine). */
const DOWN_AFTER_MS = 2000;
const FAILOVER_TIMEOUT_MS = 10_000;

/**
 * A primary, its replica and one sentinel (quorum 1) of one test alone, on free loopback ports in
 * a temp dir, no persistence. `start()` returns once the replica is in sync and the sentinel
 * knows it as a replica it could promote; `sentinels` and `name` are what REDIS_SENTINELS and
 * REDIS_SENTINEL_NAME take.
 */
export class TestRedisSentinel {
  /** Made by `start()`, removed by `stop()`. */
  private dir = '';
  private readonly servers = new Map<number, ChildProcess>();
  private sentinel?: ChildProcess;
  readonly name = `test-${randomBytes(3).toString('hex')}`;
  sentinelPort = 0;
  /** The two data nodes' ports (the first started as the primary). */
  dataPorts: number[] = [];

  /** `127.0.0.1:<port>` of the sentinel, for REDIS_SENTINELS. */
  get sentinels(): string {
    return `127.0.0.1:${this.sentinelPort}`;
  }

  async start(): Promise<this> {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'test-redis-sentinel-'));
    const [primary, replica, sentinel] = await freePorts(3);
    this.dataPorts = [primary, replica];
    this.sentinelPort = sentinel;
    const data = (port: number, more: string[] = []) =>
      spawnRedisServer(this.dir, `redis-${port}`, [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--appendonly',
        'no',
        '--save',
        '',
        '--dir',
        this.dir,
        ...more,
      ]);
    this.servers.set(primary, data(primary));
    await waitForPong(primary, this.servers.get(primary)!, 'the primary to answer', () =>
      this.logs(),
    );
    this.servers.set(replica, data(replica, ['--replicaof', '127.0.0.1', String(primary)]));
    await waitForPong(replica, this.servers.get(replica)!, 'the replica to answer', () =>
      this.logs(),
    );
    // In sync before the sentinel starts: it learns of replicas from the primary's INFO, which
    // it reads at once and then only every 10 s.
    await waitFor(
      async () => {
        const info = infoFields(await redisCli(replica, 'INFO', 'replication').catch(() => ''));
        return info.master_link_status === 'up' ? true : undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: 'the replica to sync',
        explain: () => this.logs(),
      },
    );
    const conf = path.join(this.dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${sentinel}`,
        'bind 127.0.0.1',
        `dir ${this.dir}`,
        `sentinel monitor ${this.name} 127.0.0.1 ${primary} 1`,
        `sentinel down-after-milliseconds ${this.name} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${this.name} ${FAILOVER_TIMEOUT_MS}`,
        `sentinel parallel-syncs ${this.name} 1`,
        '',
      ].join('\n'),
    );
    this.sentinel = spawnRedisServer(this.dir, 'sentinel', [conf, '--sentinel']);
    await waitForPong(sentinel, this.sentinel, 'the sentinel to answer', () => this.logs());
    await this.promotableReplica();
    return this;
  }

  /** The port of the primary the sentinel names now. */
  async primaryPort(): Promise<number> {
    const reply = await redisCli(
      this.sentinelPort,
      'SENTINEL',
      'get-master-addr-by-name',
      this.name,
    );
    return Number(reply.split('\n')[1]);
  }

  /**
   * SENTINEL FAILOVER, once the replica can be promoted; returns when the sentinel names the other
   * node primary and that node answers ROLE master. Returns the new primary's port.
   */
  async failover(): Promise<number> {
    const from = await this.primaryPort();
    const to = await this.promotableReplica();
    await redisCli(this.sentinelPort, 'SENTINEL', 'FAILOVER', this.name);
    await this.waitForPrimary(to, `the failover from ${from} to ${to}`);
    return to;
  }

  /**
   * Kills the primary (SIGKILL), once the replica can be promoted: the sentinel finds it down after
   * 2 s and fails over by itself. Returns the killed port; `waitForPrimary` waits for the rest.
   */
  async killPrimary(): Promise<number> {
    const port = await this.primaryPort();
    await this.promotableReplica();
    await killProcess(this.servers.get(port));
    this.servers.delete(port);
    return port;
  }

  /** Waits until the sentinel names `port` primary and that node answers ROLE master. */
  async waitForPrimary(port: number, what = `${port} to be primary`): Promise<void> {
    await waitFor(
      async () => {
        if ((await this.primaryPort().catch(() => 0)) !== port) return undefined;
        const role = await redisCli(port, 'ROLE').catch(() => '');
        return role.split('\n')[0] === 'master' ? true : undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 100,
        what,
        explain: () => this.logs(),
      },
    );
  }

  /**
   * Kills every process and removes the dir. First gives the clients' connections to the sentinel
   * (ioredis's failover detectors, closing along with the connections they serve) up to 10 s to
   * go: a socket whose peer is killed mid-close keeps its client's process alive 2 s more.
   */
  async stop(): Promise<void> {
    if (this.sentinel && this.sentinel.exitCode === null) {
      await waitFor(
        async () => {
          const info = infoFields(await redisCli(this.sentinelPort, 'INFO', 'clients'));
          // redis-cli's own connection is the one left.
          return Number(info.connected_clients) <= 1 ? true : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 100, what: 'clients to leave the sentinel' },
      ).catch(() => undefined);
    }
    await killProcess(this.sentinel);
    await Promise.all([...this.servers.values()].map((child) => killProcess(child)));
    this.servers.clear();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Waits until the sentinel lists a replica of the current primary it would promote (up, in
   * sync, not flagged down): SENTINEL FAILOVER refuses with NOGOODSLAVE before. Its port.
   */
  private async promotableReplica(): Promise<number> {
    return waitFor(
      async () => {
        const reply = await redisCli(this.sentinelPort, 'SENTINEL', 'replicas', this.name).catch(
          () => '',
        );
        const good = replyMaps(reply).find(
          (replica) =>
            replica.flags === 'slave' &&
            replica['master-link-status'] === 'ok' &&
            this.servers.has(Number(replica.port)),
        );
        return good ? Number(good.port) : undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: `the sentinel to know a replica of ${this.name} it could promote`,
        explain: () => this.logs(),
      },
    );
  }

  private logs(): string {
    return [
      ...this.dataPorts.map((p) => logTail(this.dir, `redis-${p}`)),
      logTail(this.dir, 'sentinel'),
    ].join('\n');
  }
}
