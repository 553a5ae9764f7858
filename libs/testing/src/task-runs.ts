import type { HttpClient } from './http-client';
import { waitFor } from './test-config';

const TERMINAL = ['completed', 'failed', 'cancelled'];

/** One answer of GET /tasks/{id}/status seen while waiting. */
export interface StatusSample {
  status: string;
  progress: number;
  step: string;
}

/**
 * Polls the task's status until it is completed, failed or cancelled and returns that answer's
 * body; every answer on the way is appended to `seen`.
 */
export function waitForTaskEnd(
  http: HttpClient,
  id: string,
  {
    timeoutMs = 120_000,
    intervalMs = 50,
    seen,
  }: { timeoutMs?: number; intervalMs?: number; seen?: StatusSample[] } = {},
): Promise<any> {
  return waitFor(
    async () => {
      const s = (await http.get(`/tasks/${id}/status`)).body;
      seen?.push({ status: s.status, progress: s.progress, step: s.current_step });
      return TERMINAL.includes(s.status) ? s : undefined;
    },
    { timeoutMs, intervalMs, what: `task ${id} to end` },
  );
}

/**
 * Submits a task (anything but 201 throws, with the answer) and waits for its end; `seen` (one
 * is made when not given) collects the status answers on the way.
 */
export async function runTaskToEnd(
  http: HttpClient,
  body: unknown,
  opts: { timeoutMs?: number; intervalMs?: number; seen?: StatusSample[] } = {},
): Promise<{ id: string; submitted: any; final: any; seen: StatusSample[] }> {
  const submitted = await http.post('/tasks/submit', body);
  if (submitted.status !== 201) {
    throw new Error(`submit answered ${submitted.status}: ${JSON.stringify(submitted.body)}`);
  }
  const id = submitted.body.task_id as string;
  const seen = opts.seen ?? [];
  const final = await waitForTaskEnd(http, id, { ...opts, seen });
  return { id, submitted: submitted.body, final, seen };
}
