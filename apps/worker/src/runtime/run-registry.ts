/** A run in this process. */
export interface ActiveRun {
  readonly runId: string;
  readonly taskId: string;
  readonly jobId: string;
  readonly projectId: string;
  readonly controller: AbortController;
  /** Settles once the run has recorded its outcome (or handed the task back). */
  readonly finished: Promise<void>;
  /**
   * The processor is done and the run only writes its outcome (store, register, complete),
   * each write guarded by its run id: a lost lock no longer stops it, finishing costs less
   * than making the media again.
   */
  finishing: boolean;
}

/** How many lost run ids are remembered (a takeover of one of them charges no attempt). */
const LOST_RUNS_KEPT = 256;

/**
 * The runs of this process, known by run id (never by task id alone: a run of a task may still
 * be winding down when the task's job comes back), the BullMQ calls in flight per job, and the
 * runs this process lost through no fault of the task (its lock lapsed, Redis refused its
 * writes), whose takeover must not charge an attempt.
 */
export class RunRegistry {
  private readonly runs = new Map<string, ActiveRun>();
  private readonly calls = new Map<string, number>();
  private readonly lost: string[] = [];

  add(run: ActiveRun): void {
    this.runs.set(run.runId, run);
  }

  /** Removes this run's own entry; another run of the same task is left alone. */
  delete(runId: string): void {
    this.runs.delete(runId);
  }

  all(): ActiveRun[] {
    return [...this.runs.values()];
  }

  byTask(taskId: string): ActiveRun[] {
    return this.all().filter((r) => r.taskId === taskId);
  }

  byJob(jobId: string): ActiveRun[] {
    return this.all().filter((r) => r.jobId === jobId);
  }

  /** The runs of a job that a lost lock stops: those whose processor still computes. */
  computingByJob(jobId: string): ActiveRun[] {
    return this.byJob(jobId).filter((r) => !r.finishing);
  }

  taskIds(): string[] {
    return [...new Set(this.all().map((r) => r.taskId))];
  }

  /** Aborts the given runs that are still going; returns how many it aborted. */
  abort(runs: readonly ActiveRun[], reason: Error): number {
    let aborted = 0;
    for (const run of runs) {
      if (run.controller.signal.aborted) continue;
      run.controller.abort(reason);
      aborted += 1;
    }
    return aborted;
  }

  /** A BullMQ call of `jobId` began in this process (from fetch to its last lock bookkeeping). */
  callStarted(jobId: string): void {
    this.calls.set(jobId, (this.calls.get(jobId) ?? 0) + 1);
  }

  callEnded(jobId: string): void {
    const n = (this.calls.get(jobId) ?? 0) - 1;
    if (n > 0) this.calls.set(jobId, n);
    else this.calls.delete(jobId);
  }

  callsInFlight(jobId: string): number {
    return this.calls.get(jobId) ?? 0;
  }

  markLost(runId: string): void {
    if (this.lost.includes(runId)) return;
    this.lost.push(runId);
    if (this.lost.length > LOST_RUNS_KEPT) this.lost.shift();
  }

  lostRunIds(): readonly string[] {
    return this.lost;
  }
}
