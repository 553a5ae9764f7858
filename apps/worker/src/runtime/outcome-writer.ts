import { randomUUID } from 'node:crypto';
import { isRedisUnavailableError } from '@app/redis';
import { TransitionError } from '@app/tasks';
import { RunSupersededError, TaskCancelledError } from './task-errors';

/** How often an outcome write that Redis refuses is tried, and the first pause between tries. */
export const OUTCOME_WRITE_TRIES = 5;
export const OUTCOME_WRITE_BACKOFF_MS = 250;

/**
 * One outcome write of a run (pending result, completion, retry, failure), tried again with the
 * same operation token while Redis refuses it, so that a write which did land (its reply lost)
 * answers as such. A refusal by the state machine becomes the run's reason to stop:
 * TaskCancelledError when the task was cancelled, RunSupersededError when it is another's now.
 */
export async function writeOutcome(
  move: (op: string) => Promise<unknown>,
  opts: { tries?: number; backoffMs?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<void> {
  const tries = opts.tries ?? OUTCOME_WRITE_TRIES;
  const backoff = opts.backoffMs ?? OUTCOME_WRITE_BACKOFF_MS;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const op = randomUUID();
  for (let attempt = 1; ; attempt++) {
    try {
      await move(op);
      return;
    } catch (err) {
      if (err instanceof TransitionError) {
        throw err.reason === 'illegal' && err.current === 'cancelled'
          ? new TaskCancelledError()
          : new RunSupersededError(`the record no longer lets this run finish (${err.message})`);
      }
      if (!isRedisUnavailableError(err) || attempt >= tries) throw err;
      await sleep(backoff * 2 ** (attempt - 1));
    }
  }
}
