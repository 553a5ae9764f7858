import { testConfig, testSigningKeys } from '@app/testing';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { WebhookSigner } from './webhook.signer';

describe('WebhookSigner', () => {
  const SECRET = 'whsec_' + Buffer.from('k'.repeat(32)).toString('base64');
  const config = testConfig({ WEBHOOK_SECRET: SECRET });
  const signer = new WebhookSigner(testSigningKeys(config));
  const body = JSON.stringify({ event: 'task.completed', task_id: 't1' });

  it('signs so that the standardwebhooks library verifies with the configured secret', () => {
    const headers = signer.headers('msg_t1_completed_0', body);
    expect(new Webhook(SECRET).verify(body, { ...headers })).toEqual(JSON.parse(body));
    expect(headers['webhook-id']).toBe('msg_t1_completed_0');
    expect(headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/=]+$/);
    expect(Number(headers['webhook-timestamp'])).toBeCloseTo(Date.now() / 1000, -1);
  });

  it('fails verification for another body, id or secret', () => {
    const headers = { ...signer.headers('msg_a', body) };
    const other = new Webhook('whsec_' + Buffer.from('x'.repeat(32)).toString('base64'));
    expect(() => new Webhook(SECRET).verify(body + ' ', headers)).toThrow(WebhookVerificationError);
    expect(() => new Webhook(SECRET).verify(body, { ...headers, 'webhook-id': 'msg_b' })).toThrow(
      WebhookVerificationError,
    );
    expect(() => other.verify(body, headers)).toThrow(WebhookVerificationError);
  });

  it('signs with the derived secret when WEBHOOK_SECRET is unset', () => {
    const derived = testConfig();
    expect(derived.webhooks.derivedSecret).toBe(true);
    const keys = testSigningKeys(derived);
    const headers = new WebhookSigner(keys).headers('msg_c', body);
    expect(() => new Webhook(keys.webhookSecret).verify(body, { ...headers })).not.toThrow();
  });
});
