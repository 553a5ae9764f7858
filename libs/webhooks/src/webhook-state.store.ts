import { Injectable } from '@nestjs/common';
import { TaskRepository, TaskStateMachine, type TaskWebhookState } from '@app/tasks';

export type WebhookAttemptPatch = Pick<
  TaskWebhookState,
  'state' | 'last_status' | 'last_error' | 'delivered_at' | 'next_attempt_at'
>;

/**
 * Delivery state of a task's webhook event, kept in the task hash (GET /status shows it) and
 * written only through the state machine's `recordWebhookOutcome` move.
 */
@Injectable()
export class WebhookStateStore {
  constructor(
    private readonly tasks: TaskRepository,
    private readonly moves: TaskStateMachine,
  ) {}

  /**
   * Records attempt number `attempt` of event `webhookId` (counted once however often it is
   * recorded); false when the task no longer waits for this event.
   */
  recordAttempt(
    taskId: string,
    webhookId: string,
    patch: WebhookAttemptPatch,
    attempt: number,
  ): Promise<boolean> {
    return this.moves.recordWebhookOutcome(taskId, webhookId, patch, `${webhookId}#${attempt}`);
  }

  async get(taskId: string): Promise<TaskWebhookState | null> {
    return (await this.tasks.get(taskId))?.webhook ?? null;
  }
}
