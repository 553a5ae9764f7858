import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRedisClient, type RedisClient } from '@app/redis';
import { TaskRepository } from '@app/tasks';
import { waitFor, waitForTaskEnd } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { WorkerProcess } from './support/worker-process.harness';

const PROJECT = 'lost_lock';

/** ~5,000 characters of dialogue: about a minute of synthesis on two cores. */
function longText(): string {
  const sentences = [
    'The detective walked into the dimly lit room and waited for the rain to stop.',
    'Nobody had touched the piano since the night the lights went out on the pier.',
    'She counted the footsteps on the stairs, then the seconds between the thunder.',
    'Somewhere below, a radio played the same three bars of an old waltz again.',
  ];
  let text = '';
  for (let i = 0; text.length < 4900; i++) text += `${sentences[i % sentences.length]} `;
  return text.slice(0, 5000).trim();
}

/** The run lines of one task in a worker's JSON log: started, handed back, stopped, completed. */
function runEvents(output: string, taskId: string): string[] {
  const events: string[] = [];
  for (const line of output.split('\n')) {
    if (!line.startsWith('{') || !line.includes(taskId)) continue;
    const msg = (JSON.parse(line) as { msg?: string }).msg ?? '';
    if (/^started /.test(msg)) events.push('start');
    else if (/handed back|stopped|^completed|^failed/.test(msg)) events.push('end');
  }
  return events;
}

/**
 * Issue 12, "a lost lock makes one healthy worker run the same task again and again": the
 * repro as filed. A worker with a 3 s lock and a stalled check every second runs a 5,000
 * character process_audio task; its BullMQ lock key is deleted every 0.5 s for 6 s (as a
 * Redis failover or a blocked loop would lose it). The run that lost its lock stops; the job
 * comes back and runs again in the same process, never beside the old run, no attempt charged;
 * the task completes.
 */
describe('a lost job lock (the issue 12 repro)', () => {
  let service: TestService;
  let worker: WorkerProcess;
  let redis: RedisClient;
  let env: Record<string, string>;

  beforeAll(async () => {
    env = {
      REDIS_PREFIX: `test-${randomBytes(4).toString('hex')}`,
      STORAGE_LOCAL_DIR: mkdtempSync(path.join(os.tmpdir(), 'lost-lock-media-')),
      WORKER_QUEUES: 'cpu_intensive',
      WORKER_CONCURRENCY_CPU_INTENSIVE: '2',
      WORKER_LOCK_DURATION_MS: '3000',
      WORKER_STALLED_INTERVAL_MS: '1000',
      LOG_LEVEL: 'info',
    };
    service = new TestService({ worker: false, env });
    await service.start();
    redis = createRedisClient(service.config, 'spec');
    worker = new WorkerProcess(env, path.join(os.tmpdir(), `lost-lock-${Date.now()}.log`));
    await worker.ready(180_000);
  }, 240_000);

  afterAll(async () => {
    await worker?.kill();
    redis?.disconnect();
    await service?.close();
  });

  it('stops the run that lost its lock, runs the task again once at a time, charges no attempt, completes', async () => {
    const res = await service.http.post('/tasks/submit', {
      project_id: PROJECT,
      task_type: 'process_audio',
      task_data: { text: longText(), format: 'mp3' },
    });
    expect(res.status).toBe(201);
    const id = res.body.task_id as string;
    const lockKey = `${service.config.redis.prefix}:bull:{cpu_intensive}:cpu_intensive:${id}:lock`;
    // Synthesis under way: the run holds its lock.
    await waitFor(
      async () => {
        const s = (await service.http.get(`/tasks/${id}/status`)).body;
        return s.current_step === 'synthesizing_speech' && (await redis.exists(lockKey)) === 1
          ? true
          : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 100, what: 'synthesis to start' },
    );

    let deleted = 0;
    const until = Date.now() + 6000;
    while (Date.now() < until) {
      deleted += await redis.del(lockKey);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(deleted).toBeGreaterThan(0);

    const done = await waitForTaskEnd(service.http, id, { timeoutMs: 600_000, intervalMs: 500 });
    const log = worker.output;
    expect({ status: done.status, error: done.error }).toEqual({
      status: 'completed',
      error: null,
    });
    expect(done.result.metadata.file_size).toBeGreaterThan(10_000);

    const record = await service.api.get(TaskRepository).get(id);
    // Our own lost locks charge nothing: the run that completed is attempt 1.
    expect(record).toMatchObject({ status: 'completed', attempts: 1, lost_runs: 0 });
    // The lock was lost at least once: the task was run again.
    expect(record!.lock_losses).toBeGreaterThan(0);
    // One process never ran two runs of the task at once: every start follows the end of the
    // run before it, and the last run is the one that completed.
    const events = runEvents(log, id);
    expect(events.filter((e) => e === 'start').length).toBe(record!.lock_losses + 1);
    for (let i = 0; i < events.length; i++) expect(events[i]).toBe(i % 2 === 0 ? 'start' : 'end');
    expect(log).not.toMatch(/was lost \d+ times/);
  }, 900_000);
});
