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
  /** Identifies the run that may write progress and the outcome (job id + attempt). */
  run_id: string | null;
  updated_at: string;
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
    result: json(h.result),
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
    updated_at: h.updated_at ?? h.created_at,
  };
}

function json<T>(value: string | undefined): T | null {
  if (!value) return null;
  return JSON.parse(value) as T;
}
