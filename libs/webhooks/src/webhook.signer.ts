import { Injectable } from '@nestjs/common';
import { SigningKeys } from '@app/redis';
import { Webhook } from 'standardwebhooks';

export interface WebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/**
 * Signs event bodies the Standard Webhooks way (HMAC-SHA256 of `id.timestamp.body` with the
 * WEBHOOK_SECRET, or the secret derived at boot: SigningKeys), so receivers verify them with any
 * Standard Webhooks library.
 */
@Injectable()
export class WebhookSigner {
  private readonly webhook: Webhook;

  constructor(keys: SigningKeys) {
    this.webhook = new Webhook(keys.webhookSecret);
  }

  headers(webhookId: string, body: string, at: Date = new Date()): WebhookHeaders {
    return {
      'webhook-id': webhookId,
      'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
      'webhook-signature': this.webhook.sign(webhookId, at, body),
    };
  }
}
