import { startDeadline } from './run-deadline';
import { TaskTimeoutError } from './task-errors';

describe('startDeadline', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('aborts with TaskTimeoutError at the lower of the two limits', () => {
    const controller = new AbortController();
    const deadline = startDeadline({ typeSeconds: 2, configSeconds: 10 }, controller);
    expect(deadline.seconds).toBe(2);
    jest.advanceTimersByTime(1999);
    expect(controller.signal.aborted).toBe(false);
    jest.advanceTimersByTime(1);
    expect(controller.signal.reason).toBeInstanceOf(TaskTimeoutError);
    expect((controller.signal.reason as Error).message).toContain('2 s');
  });

  it('takes the configured limit when the type has none, and clear ends the watch', () => {
    const controller = new AbortController();
    const deadline = startDeadline({ configSeconds: 3 }, controller);
    expect(deadline.seconds).toBe(3);
    deadline.clear();
    jest.advanceTimersByTime(10_000);
    expect(controller.signal.aborted).toBe(false);
  });
});
