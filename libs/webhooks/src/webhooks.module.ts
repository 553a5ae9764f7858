import { Module } from '@nestjs/common';
import { NetModule } from '@app/net';
import { StorageModule } from '@app/storage';
import { TasksModule } from '@app/tasks';
import { WebhookDeliveryEvents } from './webhook-delivery.events';
import { WebhookDeliveryWorker } from './webhook-delivery.worker';
import { WebhookOutboxRelay } from './webhook-outbox.relay';
import { WebhookSigner } from './webhook.signer';
import { WebhookStateStore } from './webhook-state.store';

/**
 * Webhook sending, run by every worker process whatever its WORKER_QUEUES: the outbox relay and
 * the delivery consumer of the `webhooks` queue (same connection and prefix as the task queues).
 * Both open their BullMQ connections at bootstrap rather than through BullModule.registerQueue,
 * so a worker that fails to boot leaves no connection open.
 */
@Module({
  imports: [TasksModule, StorageModule, NetModule],
  providers: [
    WebhookSigner,
    WebhookStateStore,
    WebhookDeliveryEvents,
    WebhookOutboxRelay,
    WebhookDeliveryWorker,
  ],
  exports: [WebhookSigner, WebhookStateStore, WebhookDeliveryEvents],
})
export class WebhooksModule {}
