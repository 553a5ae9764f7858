import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  freePorts,
  infoFields,
  killProcess,
  logTail,
  redisCli,
  spawnRedisServer,
  waitForPong,
} from './redis-process';
import { waitFor } from './test-config';

/**
 * A Redis Cluster of one test alone: three masters (no replicas) on free loopback ports, in a temp
 * dir, no persistence. `start()` returns once every node says `cluster_state:ok`; `nodes` is
 * what REDIS_CLUSTER_NODES takes. Each node has a bus port of its own (`--cluster-port`): a free
 * port + 10000 may not be one.
 */
export class TestRedisCluster {
  /** Made by `start()`, removed by `stop()`. */
  private dir = '';
  private readonly children: ChildProcess[] = [];
  ports: number[] = [];

  /** `127.0.0.1:a,127.0.0.1:b,127.0.0.1:c`, for REDIS_CLUSTER_NODES. */
  get nodes(): string {
    return this.ports.map((p) => `127.0.0.1:${p}`).join(',');
  }

  async start(): Promise<this> {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'test-redis-cluster-'));
    const [a, b, c, ...bus] = await freePorts(6);
    this.ports = [a, b, c];
    this.ports.forEach((port, i) => {
      this.children.push(
        spawnRedisServer(this.dir, `node-${port}`, [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-port',
          String(bus[i]),
          '--cluster-node-timeout',
          '5000',
          '--appendonly',
          'no',
          '--save',
          '',
          '--dir',
          this.dir,
        ]),
      );
    });
    for (const [i, port] of this.ports.entries()) {
      await waitForPong(port, this.children[i], `cluster node ${port} to answer`, () =>
        this.logs(),
      );
    }
    await this.create();
    await waitFor(
      async () => {
        for (const port of this.ports) {
          const info = infoFields(await redisCli(port, 'CLUSTER', 'INFO').catch(() => ''));
          const joined =
            info.cluster_state === 'ok' &&
            info.cluster_known_nodes === '3' &&
            info.cluster_slots_ok === '16384';
          if (!joined) return undefined;
        }
        return true;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'cluster_state:ok on every node',
        explain: () => this.logs(),
      },
    );
    return this;
  }

  /** Kills every node and removes the dir. */
  async stop(): Promise<void> {
    await Promise.all(this.children.splice(0).map((child) => killProcess(child)));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  private create(): Promise<void> {
    const args = [
      '--cluster',
      'create',
      ...this.ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ];
    return new Promise((resolve, reject) => {
      // It assigns the slots, meets the nodes and waits for them to agree (its own polling).
      execFile('redis-cli', args, { timeout: 120_000 }, (err, stdout, stderr) => {
        if (!err) return resolve();
        reject(
          new Error(
            `redis-cli ${args.join(' ')} failed: ${stderr || err.message}\n${stdout}\n${this.logs()}`,
          ),
        );
      });
    });
  }

  private logs(): string {
    return this.ports.map((p) => logTail(this.dir, `node-${p}`)).join('\n');
  }
}
