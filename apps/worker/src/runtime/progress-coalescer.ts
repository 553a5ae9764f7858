import type { ProgressAnswer } from '@app/tasks';
import { RunSupersededError, TaskCancelledError } from './task-errors';

/**
 * Progress reports closer together than this are coalesced: a processor's report of the same
 * step as its previous one is dropped when that one reached the record less than this ago.
 * The runner's own steps (`milestone`) are skipped, too, when the record got progress less
 * than this ago: a run that short completes (progress 1 and its final step) straight after.
 */
export const PROGRESS_MIN_INTERVAL_MS = 200;

/** Writes one report; answers whether the run still owns the task. */
export type ProgressSink = (fraction: number, step: string) => Promise<ProgressAnswer>;

/**
 * The progress of one run, for its processor and the runner's own steps. A report is written
 * unless coalesced; the answer tells the run it was cancelled (TaskCancelledError) or taken
 * over (RunSupersededError): the controller is aborted with that reason and it is thrown.
 */
export class ProgressCoalescer {
  private last: number;
  private lastStep = '';

  constructor(
    private readonly sink: ProgressSink,
    private readonly controller: AbortController,
    /** When the last progress reached the record (the claim wrote 0 `starting`). */
    writtenAt: number,
    private readonly now: () => number = Date.now,
  ) {
    this.last = writtenAt;
  }

  /** The processor's `progress(fraction, step)`. */
  readonly report = async (fraction: number, step: string, force = false): Promise<void> => {
    const signal = this.controller.signal;
    if (signal.aborted) throw signal.reason;
    const now = this.now();
    if (!force && step === this.lastStep && now - this.last < PROGRESS_MIN_INTERVAL_MS) return;
    this.last = now;
    this.lastStep = step;
    const answer = await this.sink(fraction, step);
    if (answer === 'processing') return;
    // Cancelled (or gone) stops the work; any other answer means another run or actor owns it.
    this.controller.abort(
      answer === 'cancelled' || answer === 'gone'
        ? new TaskCancelledError()
        : new RunSupersededError(),
    );
    throw signal.reason;
  };

  /** A step of the runner's own: written unless the record got progress very recently. */
  async milestone(fraction: number, step: string): Promise<void> {
    if (this.now() - this.last < PROGRESS_MIN_INTERVAL_MS) {
      if (this.controller.signal.aborted) throw this.controller.signal.reason;
      return;
    }
    await this.report(fraction, step, true);
  }
}
