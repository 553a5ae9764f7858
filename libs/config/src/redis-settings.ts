import type { ValidationArguments } from 'class-validator';

/** How the service reaches Redis: one server, a Redis Cluster, or a primary found by Sentinel. */
export type RedisMode = 'single' | 'cluster' | 'sentinel';

export interface RedisHostPort {
  host: string;
  port: number;
}

interface RedisSettingsBase {
  /** REDIS_PREFIX: every key the service owns starts with it. */
  prefix: string;
  /** REDIS_COMMAND_TIMEOUT_MS: bound of one command on the shared command connection. */
  commandTimeoutMs: number;
  /** REDIS_USERNAME, else the one in REDIS_URL (single mode); ACL user of the data nodes. */
  username?: string;
  /** REDIS_PASSWORD, else the one in REDIS_URL (single mode). Not enumerable: never logged. */
  password?: string;
}

/** REDIS_URL: one server (`rediss://` for TLS, the database in the path). */
export interface SingleRedisSettings extends RedisSettingsBase {
  mode: 'single';
  host: string;
  port: number;
  db: number;
  tls: boolean;
}

/** REDIS_CLUSTER_NODES: some nodes of a Redis Cluster (the client learns the rest). */
export interface ClusterRedisSettings extends RedisSettingsBase {
  mode: 'cluster';
  nodes: readonly RedisHostPort[];
  /** REDIS_TLS: TLS to every node. */
  tls: boolean;
}

/** REDIS_SENTINELS + REDIS_SENTINEL_NAME: the primary the sentinels name, followed on failover. */
export interface SentinelRedisSettings extends RedisSettingsBase {
  mode: 'sentinel';
  sentinels: readonly RedisHostPort[];
  /** The name the sentinels monitor (`sentinel monitor <name> …`). */
  name: string;
  /** REDIS_SENTINEL_PASSWORD: the sentinels' own password. Not enumerable: never logged. */
  sentinelPassword?: string;
  /** REDIS_TLS: TLS to the sentinels and to the primary and replicas. */
  tls: boolean;
}

export type RedisSettings = SingleRedisSettings | ClusterRedisSettings | SentinelRedisSettings;

const HOST = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?)$/;

/**
 * `host:port,host:port` (IPv6 hosts in brackets). Returns the addresses, or the first entry that
 * is not one, as it may be shown: anything before an `@` (credentials) is left out.
 */
export function parseHostPortList(
  raw: string,
): { nodes: RedisHostPort[] } | { bad: string; reason: string } {
  const entries = raw
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  if (entries.length === 0) return { bad: '', reason: 'lists no host:port' };
  const nodes: RedisHostPort[] = [];
  for (const entry of entries) {
    const colon = entry.lastIndexOf(':');
    const host = colon > 0 ? entry.slice(0, colon) : '';
    const port = colon > 0 ? entry.slice(colon + 1) : '';
    const portNumber = /^\d{1,5}$/.test(port) ? Number(port) : NaN;
    if (!HOST.test(host) || !(portNumber >= 1 && portNumber <= 65535)) {
      return { bad: shownEntry(entry), reason: 'is not host:port' };
    }
    nodes.push({ host: host.replace(/^\[|\]$/g, ''), port: portNumber });
  }
  return { nodes };
}

function shownEntry(entry: string): string {
  const at = entry.lastIndexOf('@');
  const shown = at >= 0 ? `…@${entry.slice(at + 1)}` : entry;
  return shown.length > 80 ? `${shown.slice(0, 80)}…` : shown;
}

/** class-validator message of a bad host:port list: names the variable and the bad entry. */
export function hostPortListMessage(args: ValidationArguments): string {
  const parsed = parseHostPortList(String(args.value));
  const which = 'bad' in parsed && parsed.bad !== '' ? `: "${parsed.bad}" ${parsed.reason}` : '';
  return `${args.property} must be a comma-separated list of host:port (IPv6 in brackets)${which}`;
}

/** Defines a secret field that JSON, util.inspect and object spread leave out. */
export function withHiddenSecret<T extends object>(
  target: T,
  key: string,
  value: string | undefined,
): T {
  if (value !== undefined) {
    Object.defineProperty(target, key, { value, enumerable: false, writable: false });
  }
  return target;
}

/** What logs and messages may say about the connection: mode and addresses, never a secret. */
export function describeRedis(s: RedisSettings): string {
  const list = (nodes: readonly RedisHostPort[]) =>
    nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',');
  switch (s.mode) {
    case 'single':
      return `single ${s.tls ? 'rediss' : 'redis'}://${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}/${s.db}`;
    case 'cluster':
      return `cluster (seeds ${list(s.nodes)}${s.tls ? ', TLS' : ''})`;
    case 'sentinel':
      return `sentinel "${s.name}" (sentinels ${list(s.sentinels)}${s.tls ? ', TLS' : ''})`;
  }
}
