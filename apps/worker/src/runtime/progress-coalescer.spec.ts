import type { ProgressAnswer } from '@app/tasks';
import { PROGRESS_MIN_INTERVAL_MS, ProgressCoalescer } from './progress-coalescer';
import { RunSupersededError, TaskCancelledError } from './task-errors';

describe('ProgressCoalescer', () => {
  let now = 0;
  let answer: ProgressAnswer = 'processing';
  const written: Array<[number, string]> = [];
  const sink = (f: number, s: string) => {
    written.push([f, s]);
    return Promise.resolve(answer);
  };
  const make = (controller = new AbortController()) => ({
    controller,
    progress: new ProgressCoalescer(sink, controller, 0, () => now),
  });

  beforeEach(() => {
    now = 1000;
    answer = 'processing';
    written.length = 0;
  });

  it('drops a report of the same step closer than the interval, keeps a new step', async () => {
    const { progress } = make();
    await progress.report(0.1, 'a');
    now += PROGRESS_MIN_INTERVAL_MS - 1;
    await progress.report(0.2, 'a');
    await progress.report(0.3, 'b');
    now += PROGRESS_MIN_INTERVAL_MS;
    await progress.report(0.4, 'b');
    expect(written).toEqual([
      [0.1, 'a'],
      [0.3, 'b'],
      [0.4, 'b'],
    ]);
  });

  it('skips a milestone right after a write, writes it after a quiet spell', async () => {
    const { progress } = make();
    await progress.report(0.5, 'work');
    await progress.milestone(0.95, 'uploading_result');
    now += PROGRESS_MIN_INTERVAL_MS;
    await progress.milestone(0.97, 'registering_media');
    expect(written).toEqual([
      [0.5, 'work'],
      [0.97, 'registering_media'],
    ]);
  });

  it('a cancelled task aborts the run with TaskCancelledError', async () => {
    const { progress, controller } = make();
    answer = 'cancelled';
    await expect(progress.report(0.1, 'a')).rejects.toBeInstanceOf(TaskCancelledError);
    expect(controller.signal.reason).toBeInstanceOf(TaskCancelledError);
  });

  it.each(['superseded', 'queued', 'completed'] as const)(
    'an answer %s means another run owns the task: RunSupersededError',
    async (a) => {
      const { progress, controller } = make();
      answer = a;
      await expect(progress.report(0.1, 'a')).rejects.toBeInstanceOf(RunSupersededError);
      expect(controller.signal.aborted).toBe(true);
    },
  );

  it('an aborted run writes nothing and throws its reason', async () => {
    const { progress, controller } = make();
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(progress.report(0.1, 'a')).rejects.toBe(reason);
    await expect(progress.milestone(0.9, 'b')).rejects.toBe(reason);
    expect(written).toEqual([]);
  });
});
