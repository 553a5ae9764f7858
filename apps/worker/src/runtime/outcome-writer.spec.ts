import { TransitionError } from '@app/tasks';
import { ReplyError } from 'ioredis';
import { writeOutcome } from './outcome-writer';
import { RunSupersededError, TaskCancelledError } from './task-errors';

describe('writeOutcome', () => {
  const oom = () => new ReplyError('OOM command not allowed when used memory > maxmemory') as Error;
  const pauses: number[] = [];
  const sleep = (ms: number) => {
    pauses.push(ms);
    return Promise.resolve();
  };
  beforeEach(() => (pauses.length = 0));

  it('tries again while Redis refuses, with the same token and growing pauses', async () => {
    const ops: string[] = [];
    let calls = 0;
    await writeOutcome(
      (op) => {
        ops.push(op);
        return ++calls < 3 ? Promise.reject(oom()) : Promise.resolve();
      },
      { sleep },
    );
    expect(ops).toHaveLength(3);
    expect(new Set(ops).size).toBe(1);
    expect(pauses).toEqual([250, 500]);
  });

  it('gives up after its tries with Redis’s error', async () => {
    let calls = 0;
    const move = () => {
      calls += 1;
      return Promise.reject(oom());
    };
    await expect(writeOutcome(move, { tries: 4, sleep })).rejects.toThrow(/OOM/);
    expect(calls).toBe(4);
  });

  it('a cancelled task is TaskCancelledError; any other refusal is RunSupersededError', async () => {
    await expect(
      writeOutcome(() => Promise.reject(new TransitionError('illegal', 'cancelled')), { sleep }),
    ).rejects.toBeInstanceOf(TaskCancelledError);
    await expect(
      writeOutcome(() => Promise.reject(new TransitionError('stale_run')), { sleep }),
    ).rejects.toBeInstanceOf(RunSupersededError);
    await expect(
      writeOutcome(() => Promise.reject(new TransitionError('illegal', 'queued')), { sleep }),
    ).rejects.toBeInstanceOf(RunSupersededError);
    expect(pauses).toEqual([]);
  });

  it('passes any other error through at once', async () => {
    const bug = new TypeError('x is undefined');
    await expect(writeOutcome(() => Promise.reject(bug), { sleep })).rejects.toBe(bug);
    expect(pauses).toEqual([]);
  });
});
