import type { QueueName, TaskPriority } from '../queues';
import type { TaskStatus } from './task-status';

export interface TaskResultRecord {
  /** Storage key of the output; the API turns it into a URL when it answers. */
  media_key: string;
  content_type: string;
  payload_media_id: string | null;
  metadata: Record<string, unknown>;
  /**
   * Set while the media is stored but not yet registered in Payload: a retry resumes from that
   * step instead of generating the media again.
   */
  pending?: 'payload';
  /**
   * When media retention (MEDIA_RETENTION_DAYS) deleted the output, or marked it deleted for the
   * bucket's lifecycle rule (the hash field `media_deleted_at`, kept beside `result`). The key
   * stays for the record; no URL is handed out for it any more.
   */
  media_deleted_at?: string;
}

export type WebhookEventName = 'task.completed' | 'task.failed' | 'task.cancelled';
export type WebhookDeliveryState = 'pending' | 'delivered' | 'failed';

/**
 * Delivery of the task's latest webhook event (field `webhook`): set to pending by the terminal
 * transition, then written by the webhook sender after each attempt.
 */
export interface TaskWebhookState {
  /** The `webhook-id` header: the same on every attempt of one event. */
  id: string;
  event: WebhookEventName;
  state: WebhookDeliveryState;
  attempts: number;
  /** HTTP status of the last attempt; null before the first or after a network error. */
  last_status: number | null;
  last_error: string | null;
  delivered_at: string | null;
  /** When the next attempt is due (state pending, after a failed attempt). */
  next_attempt_at: string | null;
}

/**
 * `result` as the API and webhooks show it: the stored key becomes a downloadable URL, null once
 * media retention deleted the output (`media_deleted_at` says when).
 */
export interface TaskResultView {
  media_url: string | null;
  payload_media_id: string | null;
  metadata: Record<string, unknown>;
  media_deleted_at?: string;
}

/** The one place a stored result becomes its wire shape (GET /status and webhook events). */
export async function taskResultView(
  result: TaskResultRecord | null,
  storage: { url(key: string): Promise<string> },
): Promise<TaskResultView | null> {
  if (!result) return null;
  if (result.media_deleted_at) {
    return {
      media_url: null,
      payload_media_id: result.payload_media_id,
      metadata: result.metadata,
      media_deleted_at: result.media_deleted_at,
    };
  }
  return {
    media_url: await storage.url(result.media_key),
    payload_media_id: result.payload_media_id,
    metadata: result.metadata,
  };
}

/** A task as stored in `tasks:{id}` (seed 001 "Task"), parsed. */
export interface TaskRecord {
  task_id: string;
  project_id: string;
  task_type: string;
  status: TaskStatus;
  priority: TaskPriority;
  task_data: Record<string, unknown>;
  callback_url: string | null;
  metadata: Record<string, unknown> | null;
  progress: number;
  current_step: string;
  result: TaskResultRecord | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
  estimated_duration: number;
  queue_position: number;
  queue: QueueName;
  /** BullMQ job of the current submission (a manual retry makes a new one). */
  job_id: string;
  /** Runs of the current submission, counting automatic retries. */
  attempts: number;
  /** Manual retries so far. */
  retries: number;
  /** Identifies the run that may write progress and the outcome (`<job id>#<run number>`). */
  run_id: string | null;
  /** Runs of lost workers (killed, lock lapsed) taken over by another worker. */
  lost_runs: number;
  /** Runs that stopped because their own job lock lapsed (handed back, no attempt charged). */
  lock_losses: number;
  /** Automatic retries so far of the current submission, by error class (seed 000's caps). */
  class_retries: Record<string, number>;
  /** Error class of the last failed attempt (network, gpu_memory, rate_limit, default, ...). */
  error_class: string | null;
  /** When the automatic retry that is waiting now is due. */
  next_retry_at: string | null;
  updated_at: string;
  /** Webhook delivery of the latest terminal event; null without callback_url or before it. */
  webhook: TaskWebhookState | null;
}

export function parseTaskHash(h: Record<string, string>): TaskRecord | null {
  if (!h.task_id) return null;
  return {
    task_id: h.task_id,
    project_id: h.project_id,
    task_type: h.task_type,
    status: h.status as TaskStatus,
    priority: Number(h.priority) as TaskPriority,
    task_data: json(h.task_data) ?? {},
    callback_url: h.callback_url || null,
    metadata: json(h.metadata),
    progress: Number(h.progress ?? 0),
    current_step: h.current_step ?? '',
    result: resultOf(h),
    error: h.error || null,
    created_at: h.created_at,
    started_at: h.started_at || null,
    completed_at: h.completed_at || null,
    estimated_duration: Number(h.estimated_duration ?? 0),
    queue_position: Number(h.queue_position ?? 0),
    queue: h.queue as QueueName,
    job_id: h.job_id,
    attempts: Number(h.attempts ?? 0),
    retries: Number(h.retries ?? 0),
    run_id: h.run_id || null,
    lost_runs: Number(h.lost_runs ?? 0),
    lock_losses: Number(h.lock_losses ?? 0),
    class_retries: json<Record<string, number>>(h.class_retries) ?? {},
    error_class: h.error_class || null,
    next_retry_at: h.next_retry_at || null,
    updated_at: h.updated_at ?? h.created_at,
    webhook: parseWebhookState(h.webhook),
  };
}

/** The stored `webhook` JSON with every field present (Lua's cjson leaves unset ones out). */
export function parseWebhookState(value: string | undefined): TaskWebhookState | null {
  const w = json<Partial<TaskWebhookState>>(value);
  if (!w?.id || !w.event) return null;
  return {
    id: w.id,
    event: w.event,
    state: w.state ?? 'pending',
    attempts: Number(w.attempts ?? 0),
    last_status: typeof w.last_status === 'number' ? w.last_status : null,
    last_error: w.last_error ?? null,
    delivered_at: w.delivered_at ?? null,
    next_attempt_at: w.next_attempt_at ?? null,
  };
}

function resultOf(h: Record<string, string>): TaskResultRecord | null {
  const result = json<TaskResultRecord>(h.result);
  return result && h.media_deleted_at
    ? { ...result, media_deleted_at: h.media_deleted_at }
    : result;
}

function json<T>(value: string | undefined): T | null {
  if (!value) return null;
  return JSON.parse(value) as T;
}
