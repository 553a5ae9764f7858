import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import {
  AppConfig,
  type ClusterRedisSettings,
  type SentinelRedisSettings,
  type SingleRedisSettings,
} from '@app/config';
import type { ConnectionOptions } from 'bullmq';
import {
  Cluster,
  Redis,
  SentinelConnector,
  type ClusterOptions,
  type SentinelConnectionOptions,
  type RedisOptions,
} from 'ioredis';

/**
 * A connection of ours: one server or sentinel-found primary (`Redis`), or a Redis Cluster
 * (`Cluster`). Both have the same commands, `defineCommand` scripts, pipelines and pub/sub; what
 * only one of them has (`Redis#stream`, `Cluster#nodes`) needs an `instanceof` first.
 */
export type RedisClient = Redis | Cluster;

/**
 * DI token of the shared command connection, a `RedisClient` bounded by REDIS_COMMAND_TIMEOUT_MS:
 * `@Inject(REDIS_CLIENT) redis: RedisClient`.
 */
export const REDIS_CLIENT = Symbol('REDIS_CLIENT');

export interface RedisClientOptions {
  /**
   * Bounds each command (queued while reconnecting included). Only for connections that send
   * short commands: never blocking reads (XREADGROUP BLOCK, BullMQ's workers) or subscribers.
   */
  commandTimeoutMs?: number;
}

const retryDelay = (times: number): number => Math.min(200 * times, 2000);

/** Options of every connection we open, commands and BullMQ alike (each node's on a cluster). */
const EVERY_CONNECTION = {
  // BullMQ workers need this; for plain commands it makes calls wait for a reconnect instead of
  // failing after 20 tries: the shared command connection bounds them with a commandTimeout
  // (REDIS_COMMAND_TIMEOUT_MS), readiness probes with their own timeouts.
  maxRetriesPerRequest: null,
  enableReadyCheck: true,
} as const;

/**
 * ioredis's sentinel connector, with its failover detector (connections to the sentinels,
 * subscribed to +switch-master) closed along with the connection it serves. ioredis closes the
 * detector only in `disconnect()`: a connection ended by QUIT (ours, BullMQ's) would leave it
 * subscribed, and reconnecting every minute for ever once the sentinels go away.
 */
class DetectorClosingSentinelConnector extends SentinelConnector {
  // ioredis hands a Connector the client's options.
  constructor(options: unknown) {
    super(options as SentinelConnectionOptions);
  }

  override async connect(...args: Parameters<SentinelConnector['connect']>) {
    const stream = await super.connect(...args);
    stream.once('close', () => {
      // ioredis 6's private field (SentinelConnector#failoverDetector).
      const self = this as unknown as { failoverDetector: { cleanup(): void } | null };
      self.failoverDetector?.cleanup();
      self.failoverDetector = null;
    });
    return stream;
  }
}

/** Where and as whom, for one server or the primary the sentinels name. */
function serverOptions(s: SingleRedisSettings | SentinelRedisSettings): RedisOptions {
  const auth = { username: s.username, password: s.password };
  if (s.mode === 'single') {
    return { host: s.host, port: s.port, db: s.db, ...auth, ...(s.tls ? { tls: {} } : {}) };
  }
  return {
    sentinels: s.sentinels.map(({ host, port }) => ({ host, port })),
    name: s.name,
    ...auth,
    sentinelPassword: s.sentinelPassword,
    // Sentinels announce a failover (+switch-master): connections leave the old primary at once
    // instead of writing to it until the sentinels get round to demoting it (those writes are lost).
    failoverDetector: true,
    Connector: DetectorClosingSentinelConnector,
    // A command that met a demoted primary was refused, not run: reconnect (to the primary the
    // sentinels name now) and send it again.
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
    ...(s.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
  };
}

function clusterOptions(
  s: ClusterRedisSettings,
  perNode: NonNullable<ClusterOptions['redisOptions']>,
): ClusterOptions {
  return {
    // The cluster's reconnect; a lost node is found again through the slot map (MOVED, refresh).
    clusterRetryStrategy: retryDelay,
    enableReadyCheck: true,
    // The default 1 s fails slot refreshes on a loaded machine.
    slotsRefreshTimeout: 5000,
    redisOptions: {
      ...EVERY_CONNECTION,
      username: s.username,
      password: s.password,
      ...(s.tls ? { tls: {} } : {}),
      ...perNode,
    },
    // TLS certificates name hosts: connect to the names given rather than their addresses.
    ...(s.tls ? { dnsLookup: (address, done) => done(null, address) } : {}),
  };
}

function clusterNodes(s: ClusterRedisSettings): Array<{ host: string; port: number }> {
  return s.nodes.map(({ host, port }) => ({ host, port }));
}

/**
 * A connection of its own, in the mode the configuration names (REDIS_URL, REDIS_CLUSTER_NODES,
 * REDIS_SENTINELS). Named `movie-task-service-<name>` (CLIENT LIST); its outages are logged once
 * each, with its reconnect. The caller closes it; `RedisClientFactory#create` also closes it at
 * shutdown.
 */
export function createRedisClient(
  config: AppConfig,
  name: string,
  { commandTimeoutMs }: RedisClientOptions = {},
): RedisClient {
  const s = config.redis;
  const perConnection = {
    connectionName: `movie-task-service-${name}`,
    ...(commandTimeoutMs ? { commandTimeout: commandTimeoutMs } : {}),
  };
  const client: RedisClient =
    s.mode === 'cluster'
      ? new Cluster(clusterNodes(s), clusterOptions(s, perConnection))
      : new Redis({
          ...serverOptions(s),
          ...EVERY_CONNECTION,
          retryStrategy: retryDelay,
          ...perConnection,
        });
  if (commandTimeoutMs) boundOfflineCommands(client, commandTimeoutMs);
  logOutages(client, new Logger(`Redis:${name}`));
  return client;
}

function logOutages(client: RedisClient, logger: Logger): void {
  let down = false;
  const lost = (err: Error, node?: string) => {
    if (!down) logger.warn(`connection error${node ? ` (node ${node})` : ''}: ${err.message}`);
    down = true;
  };
  client.on('error', (err: Error) => lost(err));
  // A cluster reports its nodes' errors apart.
  client.on('node error', (err: Error, node: string) => lost(err, node));
  client.on('ready', () => {
    if (down) logger.log('reconnected');
    down = false;
  });
}

/**
 * ioredis keeps a command issued while disconnected in its offline queue and sends it on
 * reconnect even when its commandTimeout has already rejected it: a submit answered 503 would
 * still create its record minutes later. A command already settled is not sent. Pipelines and
 * transactions (sent with a stream) are left alone: skipping one of their commands would break
 * their framing. A cluster queues twice (its own queue while no node can take a command, then
 * the node's): both are guarded, and the bound starts when the cluster gets the command.
 */
function boundOfflineCommands(client: RedisClient, timeoutMs: number): void {
  if (!(client instanceof Cluster)) {
    dropSettledOfflineCommands(client);
    return;
  }
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...[command, stream, node]: Parameters<Cluster['sendCommand']>) => {
    // The nodes' commandTimeout would start only once a node takes the command.
    command.setTimeout(timeoutMs);
    return command.isSettled && stream === undefined
      ? command.promise
      : send(command, stream, node);
  };
  client.on('+node', (node: Redis) => dropSettledOfflineCommands(node));
}

function dropSettledOfflineCommands(client: Redis): void {
  const send = client.sendCommand.bind(client);
  client.sendCommand = (...[command, stream]: Parameters<Redis['sendCommand']>): unknown =>
    command.isSettled && stream === undefined ? command.promise : send(command, stream);
}

/**
 * Closes a connection and waits for it to end: QUIT when it is up (replies in flight still
 * arrive), else at once. Each step is bounded by `boundMs`: a server that stopped answering must
 * not hold a shutdown.
 */
export async function closeRedisClient(client: RedisClient, boundMs = 2000): Promise<void> {
  if (client.status === 'end') return;
  const ended = new Promise<true>((resolve) => client.once('end', () => resolve(true)));
  if (client.status === 'ready') {
    const quit = client.quit().then(
      () => true,
      () => false,
    );
    if (!(await within(quit, boundMs))) client.disconnect();
  } else {
    client.disconnect();
  }
  if (!(await within(ended, boundMs))) client.disconnect();
}

/** `promise`'s value, or false when it has not settled within `ms`. */
async function within(promise: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The one place the service gets Redis connections from (DESIGN §2, libs/redis), in the mode the
 * configuration names. It closes at shutdown (or `close()`, outside Nest) every connection it
 * opened that is still open: the shared command connection (`REDIS_CLIENT`), subscribers and
 * blocking readers made with `create`, and BullMQ's shared cluster connection.
 */
@Injectable()
export class RedisClientFactory implements OnApplicationShutdown {
  private readonly opened = new Set<RedisClient>();
  private bullCluster?: Cluster;

  constructor(private readonly config: AppConfig) {}

  /** A connection of its own (see `createRedisClient`). */
  create(name: string, options?: RedisClientOptions): RedisClient {
    return this.track(createRedisClient(this.config, name, options));
  }

  /**
   * The `connection` of a BullMQ Queue or Worker (and of BullModule.forRoot). One server or
   * sentinel: options, from which each Queue and Worker opens connections it owns and closes.
   * A cluster: BullMQ needs a `Cluster` instance; every Queue of this process shares this one
   * (BullMQ leaves a passed instance open: this factory closes it, after Nest has closed the
   * queues), and every Worker makes its own two copies of it (its command and blocking
   * connections, which it closes). Never a commandTimeout: workers block.
   */
  bullConnection(): ConnectionOptions {
    const s = this.config.redis;
    if (s.mode !== 'cluster') {
      return { ...serverOptions(s), ...EVERY_CONNECTION, retryStrategy: retryDelay };
    }
    if (!this.bullCluster || this.bullCluster.status === 'end') {
      const cluster = new Cluster(
        clusterNodes(s),
        clusterOptions(s, { connectionName: 'movie-task-service-bullmq' }),
      );
      logOutages(cluster, new Logger('Redis:bullmq'));
      this.bullCluster = this.track(cluster);
    }
    return this.bullCluster;
  }

  /** Closes every connection this factory opened that is still open. */
  async close(): Promise<void> {
    const open = [...this.opened];
    this.opened.clear();
    await Promise.all(open.map((client) => closeRedisClient(client)));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.close();
  }

  private track<T extends RedisClient>(client: T): T {
    this.opened.add(client);
    client.once('end', () => this.opened.delete(client));
    return client;
  }
}
