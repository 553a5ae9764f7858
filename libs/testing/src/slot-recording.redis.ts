import { slotOf } from '@app/redis';
import { Redis } from 'ioredis';

/** One script call, pipeline or transaction the code under test sent, with its keys. */
export interface RecordedCall {
  /** The script's command name (defineCommand), `eval`, `pipeline` or `multi`. */
  name: string;
  keys: string[];
  args: Array<string | number>;
  /** For scripts: the Lua source. */
  lua?: string;
}

/**
 * A stand-in for the command connection that answers nothing itself but records every script
 * (defineCommand'd or EVAL), pipeline and transaction with the keys it declares, so a unit spec
 * can check that each touches one Redis Cluster slot (what a cluster requires of a script, a
 * MULTI and — for ioredis — a pipeline). `replies` gives a script's answer by command name.
 */
export class SlotRecordingRedis {
  readonly calls: RecordedCall[] = [];

  constructor(private readonly replies: Record<string, unknown> = {}) {}

  defineCommand(name: string, def: { numberOfKeys: number; lua: string }): void {
    (this as unknown as Record<string, unknown>)[name] = (...all: Array<string | number>) => {
      const keys = all.slice(0, def.numberOfKeys).map(String);
      this.calls.push({ name, keys, args: all.slice(def.numberOfKeys), lua: def.lua });
      return Promise.resolve(this.replies[name] ?? 1);
    };
  }

  eval(lua: string, numberOfKeys: number, ...rest: Array<string | number>): Promise<unknown> {
    const keys = rest.slice(0, numberOfKeys).map(String);
    this.calls.push({ name: 'eval', keys, args: rest.slice(numberOfKeys), lua });
    return Promise.resolve(this.replies.eval ?? 1);
  }

  pipeline(): unknown {
    return this.batch('pipeline');
  }

  multi(): unknown {
    return this.batch('multi');
  }

  /** A chain that takes any command's first argument as its key; exec answers [null, reply]s. */
  private batch(name: 'pipeline' | 'multi'): unknown {
    const keys: string[] = [];
    const proxy: unknown = new Proxy(
      {},
      {
        get: (_target, command: string) => {
          if (command === 'exec') {
            return () => {
              this.calls.push({ name, keys, args: [] });
              return Promise.resolve(keys.map(() => [null, this.replies[name] ?? []]));
            };
          }
          return (key: string) => {
            keys.push(String(key));
            return proxy;
          };
        },
      },
    );
    return proxy;
  }

  /**
   * This object as the client the code under test takes; `instanceof Redis` holds too (a library
   * that opens its own connection unless handed a client checks that).
   */
  asRedis(): Redis {
    return new Proxy(this, { getPrototypeOf: () => Redis.prototype }) as unknown as Redis;
  }

  /** Calls whose keys do not all hash to one slot (none is what a spec expects). */
  crossSlot(): Array<RecordedCall & { slots: number[] }> {
    return this.calls
      .map((c) => ({ ...c, slots: [...new Set(c.keys.map(slotOf))] }))
      .filter((c) => c.slots.length > 1);
  }
}
