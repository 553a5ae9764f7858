import { Injectable, Logger } from '@nestjs/common';

/** How one delivery attempt ended: delivered, retried later, or given up. */
export type WebhookDeliveryOutcome = 'delivered' | 'failed' | 'retrying';

export interface WebhookDeliveryEvent {
  outcome: WebhookDeliveryOutcome;
  task_id: string;
  project_id: string;
  attempt: number;
  status: number | null;
}

type Listener = (event: WebhookDeliveryEvent) => void;

/** Synchronous fan-out of delivery outcomes (the worker's metrics listen); never disturbs one. */
@Injectable()
export class WebhookDeliveryEvents {
  private readonly logger = new Logger(WebhookDeliveryEvents.name);
  private readonly listeners: Listener[] = [];

  on(listener: Listener): void {
    this.listeners.push(listener);
  }

  emit(event: WebhookDeliveryEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn(`webhook event listener failed: ${(err as Error).message}`);
      }
    }
  }
}
