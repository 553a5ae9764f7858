import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';

/**
 * Where a task's Redis commands go (issue 15, "Redis cost per task"). `background` is what
 * timers do because tasks exist (the reconciler reading pending tasks, the cancel watcher reading
 * running ones, lock renewals); `timers` what they do whether or not there are tasks (the relay
 * sweeping the streams of partitions without tasks and claiming, the reconciler's walk of the
 * active-project sets and its lock, BullMQ's stalled checks).
 */
export const STAGES = [
  'submit',
  'claim',
  'progress',
  'complete',
  'webhook relay',
  'webhook delivery',
  'heartbeats',
  'background',
  'timers',
  'connections',
  'other',
] as const;
export type Stage = (typeof STAGES)[number];

/** A command's stage and a label naming it (script name, command and key kind). */
export interface Attribution {
  stage: Stage;
  label: string;
}

/**
 * Script names by SHA-1, from every `defineCommand` of every ioredis client in this process
 * (ours and BullMQ's): EVALSHA names only the hash. Installed once, before any client exists.
 */
export class ScriptNames {
  private static readonly bySha = new Map<string, string>();
  private static installed = false;

  static install(): void {
    if (ScriptNames.installed) return;
    ScriptNames.installed = true;
    const proto = Redis.prototype as unknown as {
      defineCommand(this: Redis, name: string, def: { lua: string; numberOfKeys?: number }): void;
    };
    const define = proto.defineCommand;
    proto.defineCommand = function (this: Redis, name, def) {
      ScriptNames.bySha.set(sha1(def.lua), shortName(name));
      define.call(this, name, def);
    };
  }

  /** The name of the script behind an EVALSHA's hash (or an EVAL's body). */
  static of(shaOrBody: string): string | undefined {
    return ScriptNames.bySha.get(shaOrBody) ?? ScriptNames.bySha.get(sha1(shaOrBody));
  }
}

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** BullMQ's `moveToActive-11:6.7.0` → `moveToActive`. */
function shortName(name: string): string {
  return name.replace(/:\d+\.\d+\.\d+.*$/, '').replace(/-\d+$/, '');
}

/** What a key is to the benchmark. */
export interface KeyRoles {
  /** Which BullMQ queue a key belongs to: the task queue, the webhook delivery queue, or none. */
  queueOf(key: string): 'tasks' | 'webhooks' | undefined;
  /** Whether the key is in the partition of the benchmark's project (where its tasks live). */
  inTaskPartition(key: string): boolean;
}

const CONNECTION_COMMANDS = new Set([
  'auth',
  'client',
  'command',
  'config',
  'hello',
  'info',
  'monitor',
  'ping',
  'psubscribe',
  'punsubscribe',
  'quit',
  'select',
  'subscribe',
  'unsubscribe',
]);

/**
 * Attributes a command to the stage whose caller sends it, from what it is and which keys it
 * names (every caller is known from the code: a script has one caller, a plain command's key
 * says whose it is). MULTI takes the stage of the command after it and EXEC that of the one
 * before it, on the same connection.
 */
export class CommandAttributor {
  private readonly last = new Map<string, Attribution>();
  private readonly openMulti = new Map<string, number>();

  constructor(private readonly roles: KeyRoles) {}

  /**
   * The command's attribution, or an empty list for a MULTI (it is returned, with its
   * stage, together with the next command of its connection).
   */
  attribute(source: string, name: string, args: readonly string[], argc: number): Attribution[] {
    if (name === 'multi') {
      this.openMulti.set(source, (this.openMulti.get(source) ?? 0) + 1);
      return [];
    }
    let a: Attribution;
    if (name === 'exec' || name === 'discard') {
      a = { stage: this.last.get(source)?.stage ?? 'other', label: name };
    } else {
      a = this.classify(name, args, argc);
      this.last.set(source, a);
    }
    const multis = this.openMulti.get(source) ?? 0;
    if (multis === 0) return [a];
    this.openMulti.delete(source);
    return [...Array.from({ length: multis }, () => ({ stage: a.stage, label: 'multi' })), a];
  }

  private classify(name: string, args: readonly string[], argc: number): Attribution {
    if (name === 'evalsha' || name === 'eval') return this.script(name, args);
    const key = args[0] ?? '';
    const queue = this.roles.queueOf(key);
    const task = /:tasks:[0-9a-f-]{36}$/.test(key);
    switch (name) {
      case 'bzpopmin':
        return { stage: queue === 'webhooks' ? 'webhook delivery' : 'claim', label: 'bzpopmin' };
      case 'xreadgroup': {
        const i = args.findIndex((a) => a.toLowerCase() === 'streams');
        return this.roles.inTaskPartition(args[i + 1] ?? '')
          ? { stage: 'webhook relay', label: name }
          : { stage: 'timers', label: 'xreadgroup, partitions without tasks (relay sweep)' };
      }
      case 'xautoclaim':
        return { stage: 'timers', label: 'xautoclaim (relay claim)' };
      case 'xack':
      case 'xdel':
      case 'xgroup':
        return { stage: 'webhook relay', label: name };
      case 'hgetall':
        if (task) return { stage: 'webhook delivery', label: 'hgetall task' };
        if (queue) return { stage: 'background', label: 'hgetall job (reconciler)' };
        break;
      case 'hmget':
        if (task && argc === 3) {
          return { stage: 'background', label: 'hmget task status,run_id (cancel watcher)' };
        }
        if (task) return { stage: 'background', label: 'hmget task (reconciler)' };
        break;
      case 'sscan':
        return { stage: 'timers', label: 'sscan active projects (reconciler)' };
      case 'zrangebyscore':
        return { stage: 'background', label: 'zrangebyscore pending (reconciler)' };
      default:
        if (CONNECTION_COMMANDS.has(name)) return { stage: 'connections', label: name };
    }
    return { stage: 'other', label: name };
  }

  private script(name: string, args: readonly string[]): Attribution {
    const script = ScriptNames.of(args[0] ?? '');
    const keys = args.slice(2, 2 + Number(args[1] ?? 0));
    const queue = keys.map((k) => this.roles.queueOf(k)).find((q) => q !== undefined);
    const webhooks = queue === 'webhooks';
    const label = `${name} ${script ?? '?'}`;
    switch (script) {
      case 'rateLimitHit':
      case 'taskQueueSnapshot':
      case 'taskCreate':
        return { stage: 'submit', label };
      case 'addStandardJob':
      case 'addPrioritizedJob':
      case 'addDelayedJob':
        return { stage: webhooks ? 'webhook relay' : 'submit', label };
      case 'moveToActive':
        return { stage: webhooks ? 'webhook delivery' : 'claim', label };
      case 'taskClaimRun':
        return { stage: 'claim', label };
      case 'taskReportProgress':
        return { stage: 'progress', label };
      case 'taskMove': {
        // ARGV[2] is the move's name (after the two keys and the prefix).
        const move = args[5] ?? '?';
        return {
          stage: move === 'complete' || move === 'recordPendingResult' ? 'complete' : 'other',
          label: `${label}(${move})`,
        };
      }
      case 'moveToFinished':
        return { stage: webhooks ? 'webhook delivery' : 'complete', label };
      case 'taskRecordWebhookOutcome':
        return { stage: 'webhook delivery', label };
      case 'workerBeat':
        return { stage: 'heartbeats', label };
      case 'moveStalledJobsToWait':
        return { stage: 'timers', label: `${label}${webhooks ? ' (webhooks)' : ''}` };
      case 'extendLock':
      case 'extendLocks':
        return { stage: 'background', label: `${label}${webhooks ? ' (webhooks)' : ''}` };
      case undefined:
        if (keys.some((k) => k.endsWith(':reconciler:leader'))) {
          return { stage: 'timers', label: `${name} reconciler lead` };
        }
        break;
      default:
        break;
    }
    return { stage: 'other', label };
  }
}
