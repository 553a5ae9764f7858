export * from './webhook.backoff';
export * from './webhook.signer';
export * from './webhook-delivery.events';
export * from './webhook-delivery.worker';
export * from './webhook-event';
export * from './webhook-outbox.relay';
export * from './webhook-state.store';
export * from './webhooks.module';
