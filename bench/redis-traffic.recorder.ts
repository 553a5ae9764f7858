import type net from 'node:net';
import { Redis } from 'ioredis';
import type { ProxyListener, SentCommand } from './counting-redis.proxy';
import {
  CommandAttributor,
  type Attribution,
  type KeyRoles,
  type Stage,
} from './redis-cost.stages';
import { sleep } from './common';

/** `stage\tlabel` */
type Key = string;

const keyOf = (a: Attribution): Key => `${a.stage}\t${a.label}`;
export const stageOf = (key: Key): Stage => key.slice(0, key.indexOf('\t')) as Stage;
export const labelOf = (key: Key): string => key.slice(key.indexOf('\t') + 1);

function add<K>(map: Map<K, number>, key: K, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n);
}

/** Cumulative counts at one moment; two of them make a window. */
export interface TrafficMark {
  /** performance.now() */
  at: number;
  /** INFO commandstats: calls by command, every client of this Redis (scripts' own calls too). */
  stats: Map<string, number>;
  /** Commands the apps sent (proxy), by stage and label. */
  sent: Map<Key, number>;
  /** The apps' request writes (round trips), by the stage of their first command. */
  writes: Map<Stage, number>;
  /** Commands in those writes (the same commands the proxy parsed, counted on the other side). */
  written: number;
  /** Commands Redis executed for the apps (MONITOR: each sent one plus those its script ran). */
  executed: Map<Key, number>;
  /** Those of them under `timers`, by command name (as commandstats names them). */
  timerCommands: Map<string, number>;
  bytesUp: number;
  bytesDown: number;
}

/** What happened between two marks. */
export interface TrafficWindow {
  seconds: number;
  stats: Map<string, number>;
  sent: Map<Key, number>;
  writes: Map<Stage, number>;
  written: number;
  executed: Map<Key, number>;
  timerCommands: Map<string, number>;
  bytesUp: number;
  bytesDown: number;
}

/** Labels that come from timers, not from tasks: ignored when waiting for the apps to be quiet. */
const PERIODIC_LABELS = new Set(['bzpopmin', 'evalsha moveToActive', 'xreadgroup', 'xautoclaim']);
const PERIODIC_STAGES = new Set<Stage>(['background', 'timers', 'connections', 'heartbeats']);

/**
 * Counts the apps' Redis traffic on a Redis of the benchmark's own: the commands and bytes they
 * send (a CountingRedisProxy between them and Redis reports to it), their request writes, i.e.
 * round trips (RedisWritesHook reports to it), the commands Redis executes for them (MONITOR,
 * which lists the commands a script runs right after the script: they are attributed to it)
 * and INFO commandstats. An observer connection reads INFO; its own commands (one INFO and one
 * ECHO per mark) are left out of every figure.
 */
export class TrafficRecorder implements ProxyListener {
  private readonly sent = new Map<Key, number>();
  private readonly writes = new Map<Stage, number>();
  private written = 0;
  private readonly executed = new Map<Key, number>();
  private readonly timerCommands = new Map<string, number>();
  private bytesUp = 0;
  private bytesDown = 0;
  private readonly proxySide: CommandAttributor;
  private readonly writeSide: CommandAttributor;
  private readonly monitorSide: CommandAttributor;
  private readonly socketIds = new WeakMap<net.Socket, string>();
  private sockets = 0;
  /** The script that MONITOR's next `lua` lines belong to. */
  private lastScript: Key = 'other\tlua ?';
  private observer?: Redis;
  private monitor?: Redis;
  private observerAddr = '';
  private marks = 0;
  private echoesSeen = 0;
  private echoWaiters: Array<{ n: number; resolve: () => void }> = [];

  constructor(roles: KeyRoles) {
    this.proxySide = new CommandAttributor(roles);
    this.writeSide = new CommandAttributor(roles);
    this.monitorSide = new CommandAttributor(roles);
  }

  /** Opens the observer and the MONITOR connection, straight to Redis (not through the proxy). */
  async open(redisUrl: string): Promise<void> {
    this.observer = new Redis(redisUrl);
    const info = await this.observer.client('INFO');
    this.observerAddr = /\baddr=(\S+)/.exec(info)?.[1] ?? '';
    this.monitor = await this.observer.monitor();
    this.monitor.on('monitor', (_time: string, args: string[], source: string) =>
      this.onMonitor(args, source),
    );
  }

  async close(): Promise<void> {
    this.monitor?.disconnect();
    this.observer?.disconnect();
  }

  clientWrite(conn: number, commands: SentCommand[], bytes: number): void {
    this.bytesUp += bytes;
    for (const c of commands) {
      for (const a of this.proxySide.attribute(String(conn), c.name, c.args, c.argc)) {
        add(this.sent, keyOf(a));
      }
    }
  }

  /** One request write of an app's socket (RedisWritesHook): a round trip of its first command. */
  readonly requestWrite = (socket: net.Socket, commands: SentCommand[]): void => {
    let id = this.socketIds.get(socket);
    if (!id) {
      id = String(++this.sockets);
      this.socketIds.set(socket, id);
    }
    let first: Attribution | undefined;
    for (const c of commands) {
      for (const a of this.writeSide.attribute(id, c.name, c.args, c.argc)) {
        first ??= a;
        this.written += 1;
      }
    }
    add(this.writes, first?.stage ?? 'other');
  };

  serverWrite(_conn: number, bytes: number): void {
    this.bytesDown += bytes;
  }

  private onMonitor(args: string[], source: string): void {
    if (source === this.observerAddr) {
      if (args[0]?.toLowerCase() === 'echo') {
        this.echoesSeen += 1;
        for (const w of this.echoWaiters) if (w.n <= this.echoesSeen) w.resolve();
        this.echoWaiters = this.echoWaiters.filter((w) => w.n > this.echoesSeen);
      }
      return;
    }
    const name = (args[0] ?? '').toLowerCase();
    if (source === 'lua') {
      add(this.executed, this.lastScript);
      if (stageOf(this.lastScript) === 'timers') add(this.timerCommands, name);
      return;
    }
    const rest = args.slice(1);
    for (const a of this.monitorSide.attribute(source, name, rest.slice(0, 8), rest.length)) {
      add(this.executed, keyOf(a));
      if (a.stage === 'timers') add(this.timerCommands, a.label === 'multi' ? 'multi' : name);
      if (name === 'evalsha' || name === 'eval') this.lastScript = keyOf(a);
    }
  }

  /** Runs of `script` (EVALSHA, or EVAL the first time on a connection) sent under `stage`. */
  scriptRuns(stage: Stage, script: string): number {
    return (
      (this.sent.get(`${stage}\tevalsha ${script}`) ?? 0) +
      (this.sent.get(`${stage}\teval ${script}`) ?? 0)
    );
  }

  /** Resolves once no command a task causes (timers aside) has been sent for `quietMs`. */
  async quiet(quietMs: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = this.taskDriven();
    let since = Date.now();
    while (Date.now() - since < quietMs) {
      if (Date.now() > deadline)
        throw new Error(`the apps did not go quiet within ${timeoutMs} ms`);
      await sleep(50);
      const now = this.taskDriven();
      if (now !== last) {
        last = now;
        since = Date.now();
      }
    }
  }

  private taskDriven(): number {
    let n = 0;
    for (const [key, count] of this.sent) {
      if (!PERIODIC_STAGES.has(stageOf(key)) && !PERIODIC_LABELS.has(labelOf(key))) n += count;
    }
    return n;
  }

  /**
   * Takes a mark: INFO commandstats and an ECHO marker in one write of the observer; the proxy's
   * counts when they answer; MONITOR's once it has shown the marker (it lists commands in the
   * order Redis ran them, so everything before the marker is in).
   */
  async mark(): Promise<TrafficMark> {
    const n = ++this.marks;
    const replies = await this.observer!.pipeline()
      .info('commandstats')
      .echo(`redis-cost-mark-${n}`)
      .exec();
    const at = performance.now();
    const [err, info] = replies?.[0] ?? [new Error('no INFO reply'), ''];
    if (err) throw err;
    const sent = new Map(this.sent);
    const writes = new Map(this.writes);
    const written = this.written;
    const [bytesUp, bytesDown] = [this.bytesUp, this.bytesDown];
    await new Promise<void>((resolve) => {
      if (this.echoesSeen >= n) resolve();
      else this.echoWaiters.push({ n, resolve });
    });
    return {
      at,
      stats: parseCommandStats(info as string),
      sent,
      writes,
      written,
      executed: new Map(this.executed),
      timerCommands: new Map(this.timerCommands),
      bytesUp,
      bytesDown,
    };
  }
}

/** `cmdstat_hset:calls=12,usec=…` lines → calls by command name. */
function parseCommandStats(info: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1], Number(m[2]));
  return out;
}

function diff<K>(before: Map<K, number>, after: Map<K, number>): Map<K, number> {
  const out = new Map<K, number>();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d !== 0) out.set(k, d);
  }
  return out;
}

/** The window between two marks; the observer's own INFO and ECHO are taken out of `stats`. */
export function windowOf(a: TrafficMark, b: TrafficMark): TrafficWindow {
  const stats = diff(a.stats, b.stats);
  // The window holds mark a's INFO and ECHO (mark b's INFO ran after its own figures were read).
  for (const own of ['info', 'echo']) {
    const n = (stats.get(own) ?? 0) - 1;
    if (n > 0) stats.set(own, n);
    else stats.delete(own);
  }
  return {
    seconds: (b.at - a.at) / 1000,
    stats,
    sent: diff(a.sent, b.sent),
    writes: diff(a.writes, b.writes),
    written: b.written - a.written,
    executed: diff(a.executed, b.executed),
    timerCommands: diff(a.timerCommands, b.timerCommands),
    bytesUp: b.bytesUp - a.bytesUp,
    bytesDown: b.bytesDown - a.bytesDown,
  };
}

/**
 * Per task: the run's counts less what the timers send in as long a time, divided by the tasks.
 * Commands under `timers` (sent whether or not there are tasks) are left out as they were
 * counted in the run; of every other command, the idle window's rate × the run's seconds is
 * taken out (a blocking wait of an idle worker, a timer heartbeat, the sweep's read of the
 * tasks' own stream).
 */
export function perTask(run: TrafficWindow, idle: TrafficWindow, tasks: number): TrafficWindow {
  const scale = run.seconds / idle.seconds;
  const net = <K>(r: Map<K, number>, i: Map<K, number>, timer: (k: K) => boolean) => {
    const out = new Map<K, number>();
    for (const k of new Set([...r.keys(), ...i.keys()])) {
      out.set(k, timer(k) ? 0 : ((r.get(k) ?? 0) - (i.get(k) ?? 0) * scale) / tasks);
    }
    return out;
  };
  const byKey = (k: Key) => stageOf(k) === 'timers';
  const noTimers = (w: TrafficWindow) => {
    const out = new Map(w.stats);
    for (const [name, n] of w.timerCommands) out.set(name, (out.get(name) ?? 0) - n);
    return out;
  };
  return {
    seconds: run.seconds / tasks,
    stats: net(noTimers(run), noTimers(idle), () => false),
    sent: net(run.sent, idle.sent, byKey),
    writes: net(run.writes, idle.writes, (stage) => stage === 'timers'),
    written: (run.written - idle.written * scale) / tasks,
    executed: net(run.executed, idle.executed, byKey),
    timerCommands: new Map(),
    bytesUp: (run.bytesUp - idle.bytesUp * scale) / tasks,
    bytesDown: (run.bytesDown - idle.bytesDown * scale) / tasks,
  };
}

export function total<K>(map: Map<K, number>): number {
  let n = 0;
  for (const v of map.values()) n += v;
  return n;
}

/** Sums a `stage\tlabel` map by stage. */
export function byStage(map: Map<Key, number>): Map<Stage, number> {
  const out = new Map<Stage, number>();
  for (const [k, v] of map) add(out, stageOf(k), v);
  return out;
}
