import { TASK_MOVES, type TaskMoveName } from './task-moves';

export const TASK_STATUSES = ['queued', 'processing', 'completed', 'failed', 'cancelled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const TERMINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled'];

/**
 * Every status change that exists, derived from the named moves (task-moves.ts): seed 001's
 * machine, plus processing → queued (automatic retry, hand-back), processing → processing (a
 * lost worker's run taken over), queued → failed (a task that could not be queued) and the
 * moves that keep a status while they change a record (progress, webhook outcome).
 */
export const TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = (() => {
  const table = Object.fromEntries(TASK_STATUSES.map((s) => [s, new Set<TaskStatus>()])) as Record<
    TaskStatus,
    Set<TaskStatus>
  >;
  for (const name of Object.keys(TASK_MOVES) as TaskMoveName[]) {
    const { from, to } = TASK_MOVES[name];
    for (const status of from as readonly TaskStatus[]) table[status].add(to ?? status);
  }
  return Object.fromEntries(
    TASK_STATUSES.map((s) => [s, TASK_STATUSES.filter((t) => table[s].has(t))]),
  ) as Record<TaskStatus, TaskStatus[]>;
})();

export function isTaskStatus(value: unknown): value is TaskStatus {
  return typeof value === 'string' && (TASK_STATUSES as readonly string[]).includes(value);
}
