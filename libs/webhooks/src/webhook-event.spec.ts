import { buildWebhookPayload, jobDataFromOutbox } from './webhook-event';

const storage = { url: (key: string) => Promise.resolve(`https://cdn.example.com/${key}?sig=1`) };
const result = {
  media_key: 'projects/p1/image/t1/output.jpg',
  content_type: 'image/jpeg',
  payload_media_id: 'media-1',
  metadata: { seed: 7 },
};

describe('webhook events', () => {
  it('reads an outbox entry and builds the completed event with the status result shape', async () => {
    const data = jobDataFromOutbox({
      webhook_id: 'msg_t1_completed_0',
      event: 'task.completed',
      task_id: 't1',
      project_id: 'p1',
      status: 'completed',
      retries: '0',
      result: JSON.stringify(result),
      error: '',
      completed_at: '2026-01-01T00:00:00.000Z',
    });
    expect(data).toMatchObject({ retries: 0, error: null, result });
    expect(await buildWebhookPayload(data!, storage)).toEqual({
      event: 'task.completed',
      task_id: 't1',
      project_id: 'p1',
      status: 'completed',
      completed_at: '2026-01-01T00:00:00.000Z',
      result: {
        media_url: 'https://cdn.example.com/projects/p1/image/t1/output.jpg?sig=1',
        payload_media_id: 'media-1',
        metadata: { seed: 7 },
      },
      error: null,
    });
  });

  it('builds a failed event with its error and no result', async () => {
    const data = jobDataFromOutbox({
      webhook_id: 'msg_t2_failed_1',
      event: 'task.failed',
      task_id: 't2',
      project_id: 'p1',
      status: 'failed',
      retries: '1',
      // A result left pending by a failed registration is not the task's result.
      result: JSON.stringify({ ...result, pending: 'payload' }),
      error: 'bad input',
      completed_at: '2026-01-01T00:00:00.000Z',
    });
    expect(await buildWebhookPayload(data!, storage)).toMatchObject({
      event: 'task.failed',
      status: 'failed',
      result: null,
      error: 'bad input',
    });
  });

  it('refuses entries that are not webhook events', () => {
    expect(
      jobDataFromOutbox({ task_id: 't', project_id: 'p', event: 'task.other', webhook_id: 'm' }),
    ).toBeNull();
    expect(
      jobDataFromOutbox({ event: 'task.failed', webhook_id: 'm', project_id: 'p' }),
    ).toBeNull();
    expect(
      jobDataFromOutbox({
        event: 'task.failed',
        webhook_id: 'm',
        task_id: 't',
        project_id: 'p',
        result: '{',
      }),
    ).toBeNull();
  });
});
