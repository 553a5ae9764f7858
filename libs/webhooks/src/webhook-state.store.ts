import { Inject, Injectable } from '@nestjs/common';
import { TaskRepository, type TaskWebhookState } from '@app/tasks';
import { Redis } from 'ioredis';

/**
 * KEYS: task hash. ARGV: webhook id, JSON patch of the state. Counts one attempt and merges the
 * patch into the task's `webhook` field, only while that field still describes this event and
 * is pending: a task hash that is gone is never recreated, a newer event (after a manual retry)
 * or a finished delivery is never overwritten by a late attempt. Returns 1 when written.
 */
const RECORD_ATTEMPT = `
local raw = redis.call('HGET', KEYS[1], 'webhook')
if not raw then return 0 end
local w = cjson.decode(raw)
if w.id ~= ARGV[1] or w.state ~= 'pending' then return 0 end
for f, v in pairs(cjson.decode(ARGV[2])) do w[f] = v end
w.attempts = (tonumber(w.attempts) or 0) + 1
redis.call('HSET', KEYS[1], 'webhook', cjson.encode(w))
return 1
`;

export type WebhookAttemptPatch = Pick<
  TaskWebhookState,
  'state' | 'last_status' | 'last_error' | 'delivered_at' | 'next_attempt_at'
>;

interface ScriptedRedis extends Redis {
  amsWebhookAttempt(taskKey: string, webhookId: string, patch: string): Promise<number>;
}

/** Delivery state of a task's webhook event, kept in the task hash (GET /status shows it). */
@Injectable()
export class WebhookStateStore {
  private readonly redis: ScriptedRedis;

  constructor(
    @Inject(Redis) redis: Redis,
    private readonly tasks: TaskRepository,
  ) {
    this.redis = redis as ScriptedRedis;
    if (!('amsWebhookAttempt' in redis)) {
      redis.defineCommand('amsWebhookAttempt', { numberOfKeys: 1, lua: RECORD_ATTEMPT });
    }
  }

  /** Records one attempt of event `webhookId`; false when the task no longer waits for it. */
  async recordAttempt(
    taskId: string,
    webhookId: string,
    patch: WebhookAttemptPatch,
  ): Promise<boolean> {
    const written = await this.redis.amsWebhookAttempt(
      this.tasks.taskKey(taskId),
      webhookId,
      JSON.stringify(patch),
    );
    return written === 1;
  }

  async get(taskId: string): Promise<TaskWebhookState | null> {
    return (await this.tasks.get(taskId))?.webhook ?? null;
  }
}
