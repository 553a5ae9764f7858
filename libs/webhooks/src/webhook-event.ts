import {
  taskResultView,
  type TaskResultRecord,
  type TaskResultView,
  type TaskStatus,
  type WebhookEventName,
} from '@app/tasks';

/** The BullMQ queue every worker delivers webhooks from. */
export const WEBHOOKS_QUEUE = 'webhooks';
export const WEBHOOK_JOB_NAME = 'deliver';

/**
 * One webhook event as the terminal transition recorded it (outbox entry → job data): the
 * outcome is a snapshot, so a later manual retry of the task cannot change what the event says.
 */
export interface WebhookJobData {
  /** `webhook-id`: `msg_<task_id>_<status>_<retries>`, the same on every attempt. */
  webhook_id: string;
  event: WebhookEventName;
  task_id: string;
  project_id: string;
  status: TaskStatus;
  /** Manual retries of the task when it ended (each ending is its own event). */
  retries: number;
  result: TaskResultRecord | null;
  error: string | null;
  completed_at: string | null;
}

/** What the receiver gets (the body of the POST), `result` shaped like GET /status's. */
export interface WebhookPayload {
  event: WebhookEventName;
  task_id: string;
  project_id: string;
  status: TaskStatus;
  completed_at: string | null;
  result: TaskResultView | null;
  error: string | null;
}

const EVENTS: readonly string[] = ['task.completed', 'task.failed', 'task.cancelled'];

/** Job data from an outbox stream entry's fields; null when the entry is not one of ours. */
export function jobDataFromOutbox(fields: Record<string, string>): WebhookJobData | null {
  const { webhook_id, event, task_id, project_id, status } = fields;
  if (!webhook_id || !task_id || !project_id || !EVENTS.includes(event)) return null;
  let result: TaskResultRecord | null = null;
  if (fields.result) {
    try {
      result = JSON.parse(fields.result) as TaskResultRecord;
    } catch {
      return null;
    }
  }
  return {
    webhook_id,
    event: event as WebhookEventName,
    task_id,
    project_id,
    status: status as TaskStatus,
    retries: Number(fields.retries ?? 0),
    result,
    error: fields.error || null,
    completed_at: fields.completed_at || null,
  };
}

/**
 * The event body. The media URL is made for each attempt (signed URLs expire, and a retry may
 * come hours later).
 */
export async function buildWebhookPayload(
  data: WebhookJobData,
  storage: { url(key: string): Promise<string> },
): Promise<WebhookPayload> {
  return {
    event: data.event,
    task_id: data.task_id,
    project_id: data.project_id,
    status: data.status,
    completed_at: data.completed_at,
    result: data.status === 'completed' ? await taskResultView(data.result, storage) : null,
    error: data.error,
  };
}
