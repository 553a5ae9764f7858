import type { TaskStatus } from './task-status';

/**
 * Every move a task record can make, and who makes it. Each named move is defined once here:
 * the statuses it starts from, the status it ends in (`null`: it stays where it is), and whether
 * only the run that owns the record may make it. `TaskStateMachine` is the only code that
 * changes a record's status, and it does so only through these names; `TRANSITIONS` is derived
 * from this table, so the table lists every transition that exists.
 *
 * | move                 | from                  | to         | by                               |
 * |----------------------|-----------------------|------------|----------------------------------|
 * | create               | (none)                | queued     | API submit                       |
 * | claimRun             | queued, processing    | processing | worker: a job starts (takeover)  |
 * | reportProgress       | processing            | (same)     | the owning run                   |
 * | recordPendingResult  | processing            | (same)     | the owning run, before Payload   |
 * | complete             | processing            | completed  | the owning run                   |
 * | scheduleRetry        | processing            | queued     | the owning run, retryable error  |
 * | handBack             | processing            | queued     | the owning run: shutdown, lost   |
 * |                      |                       |            | lock, Redis refusing its writes  |
 * | fail                 | processing            | failed     | the owning run                   |
 * | failUnqueued         | queued                | failed     | API (job not added), worker      |
 * |                      |                       |            | (unknown type), reconciler       |
 * | failLost             | queued, processing    | failed     | worker: BullMQ gave the job up;  |
 * |                      |                       |            | reconciler: budget spent         |
 * | cancel               | queued, processing    | cancelled  | API                              |
 * | discardResult        | cancelled             | (same)     | the run that was cancelled       |
 * | retry                | failed, cancelled     | queued     | API (manual retry)               |
 * | requeue              | queued, processing    | queued     | reconciler: the job is missing   |
 * | recordWebhookOutcome | completed, failed,    | (same)     | webhook delivery                 |
 * |                      | cancelled             |            |                                  |
 *
 * Every move is safe to run twice: it carries an operation token, and a record that already
 * shows that token as its last move answers as the first run did (ioredis re-sends a command
 * whose reply was lost on reconnect; a caller may retry an outcome write).
 */
export const TASK_MOVES = {
  create: { from: [], to: 'queued', ownRun: false },
  claimRun: { from: ['queued', 'processing'], to: 'processing', ownRun: false },
  reportProgress: { from: ['processing'], to: null, ownRun: true },
  recordPendingResult: { from: ['processing'], to: null, ownRun: true },
  complete: { from: ['processing'], to: 'completed', ownRun: true },
  scheduleRetry: { from: ['processing'], to: 'queued', ownRun: true },
  handBack: { from: ['processing'], to: 'queued', ownRun: true },
  fail: { from: ['processing'], to: 'failed', ownRun: true },
  failUnqueued: { from: ['queued'], to: 'failed', ownRun: false },
  failLost: { from: ['queued', 'processing'], to: 'failed', ownRun: false },
  cancel: { from: ['queued', 'processing'], to: 'cancelled', ownRun: false },
  discardResult: { from: ['cancelled'], to: null, ownRun: true },
  retry: { from: ['failed', 'cancelled'], to: 'queued', ownRun: false },
  requeue: { from: ['queued', 'processing'], to: 'queued', ownRun: false },
  recordWebhookOutcome: {
    from: ['completed', 'failed', 'cancelled'],
    to: null,
    ownRun: false,
  },
} as const satisfies Record<
  string,
  { from: readonly TaskStatus[]; to: TaskStatus | null; ownRun: boolean }
>;

export type TaskMoveName = keyof typeof TASK_MOVES;

export interface TaskMoveRule {
  readonly from: readonly TaskStatus[];
  readonly to: TaskStatus | null;
  readonly ownRun: boolean;
}

export function moveRule(name: TaskMoveName): TaskMoveRule {
  return TASK_MOVES[name];
}

/** Whether `move` may start from `status`. */
export function moveAllowed(name: TaskMoveName, status: TaskStatus): boolean {
  return moveRule(name).from.includes(status);
}

/** The status a move from `status` ends in. */
export function moveTarget(name: TaskMoveName, status: TaskStatus): TaskStatus {
  return moveRule(name).to ?? status;
}
