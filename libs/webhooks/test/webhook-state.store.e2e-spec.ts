import { randomUUID } from 'node:crypto';
import { createRedisClient } from '@app/redis';
import { QueueName, TaskRepository, TaskStateMachine } from '@app/tasks';
import { newTaskId } from '@app/redis';
import { cleanRedis, testConfig } from '@app/testing';
import { WebhookStateStore } from '../src/webhook-state.store';

/** Against the real Redis, under a prefix of its own. */
describe('WebhookStateStore', () => {
  const config = testConfig();
  const redis = createRedisClient(config, 'spec');
  const tasks = new TaskRepository(redis, config);
  const moves = new TaskStateMachine(redis, tasks);
  const store = new WebhookStateStore(tasks, moves);

  afterAll(async () => {
    await cleanRedis(config);
    redis.disconnect();
  });

  async function endedTask(): Promise<string> {
    const id = newTaskId('proj_state');
    await tasks.create({
      task_id: id,
      project_id: 'proj_state',
      task_type: 'generate_image',
      priority: 2,
      task_data: {},
      callback_url: 'https://hooks.example.com/x',
      estimated_duration: 1,
      queue: QueueName.GpuMedium,
      job_id: id,
      created_at: new Date(),
    });
    await moves.cancel(id);
    return id;
  }
  const pending = { state: 'pending' as const, delivered_at: null };

  it('counts attempts and ends in delivered', async () => {
    const id = await endedTask();
    const hook = `msg_${id}_cancelled_0`;
    const next = new Date(Date.now() + 5000).toISOString();
    expect(
      await store.recordAttempt(
        id,
        hook,
        {
          ...pending,
          last_status: 500,
          last_error: 'HTTP 500',
          next_attempt_at: next,
        },
        1,
      ),
    ).toBe(true);
    expect(await store.get(id)).toMatchObject({
      state: 'pending',
      attempts: 1,
      last_status: 500,
      last_error: 'HTTP 500',
      next_attempt_at: next,
    });
    const at = new Date().toISOString();
    await store.recordAttempt(
      id,
      hook,
      {
        state: 'delivered',
        last_status: 200,
        last_error: null,
        delivered_at: at,
        next_attempt_at: null,
      },
      2,
    );
    expect(await store.get(id)).toEqual({
      id: hook,
      event: 'task.cancelled',
      state: 'delivered',
      attempts: 2,
      last_status: 200,
      last_error: null,
      delivered_at: at,
      next_attempt_at: null,
    });
    // A late duplicate attempt (a stalled job run again) changes nothing any more.
    expect(
      await store.recordAttempt(
        id,
        hook,
        {
          ...pending,
          last_status: 500,
          last_error: 'x',
          next_attempt_at: null,
        },
        3,
      ),
    ).toBe(false);
    expect((await store.get(id))!.attempts).toBe(2);
  });

  it('never writes another event’s state, nor a task that is gone', async () => {
    const id = await endedTask();
    const patch = { ...pending, last_status: 500, last_error: 'e', next_attempt_at: null };
    expect(await store.recordAttempt(id, `msg_${id}_failed_0`, patch, 4)).toBe(false);
    expect((await store.get(id))!.attempts).toBe(0);
    const gone = randomUUID();
    expect(await store.recordAttempt(gone, `msg_${gone}_failed_0`, patch, 5)).toBe(false);
    expect(await redis.exists(tasks.taskKey(gone))).toBe(0);
  });
});
