import { EventEmitter } from 'node:events';
import { AppConfig } from '@app/config';
import { newTaskId, projectPartitionPrefix, redisKey, slotOf } from '@app/redis';
import { SlotRecordingRedis } from '@app/testing';
import type { Queue } from 'bullmq';
import { ALL_QUEUES, QueueName } from '../queues';
import { TaskQueueService } from '../queue/task-queue.service';
import { TaskRepository } from './task.repository';
import { TaskStateMachine } from './task-state.machine';
import * as scripts from './task.scripts';

/**
 * Redis Cluster runs a script, a MULTI or (for ioredis) a pipeline only when every key it
 * touches hashes to one slot. These checks run every task script, transaction and pipeline the
 * repository, the state machine and the queue service send, for tasks of many projects, and
 * fail when one would span slots; and they check that the Lua builds keys only from its KEYS
 * and from the partition prefix it is given (ARGV[1]).
 */
describe('task scripts touch one Redis Cluster slot', () => {
  const config = AppConfig.fromEnv({ API_KEYS: 'k', REDIS_PREFIX: 'ams' });
  const projects = [
    'detective_series_001',
    'p1',
    'Ünïcode-project',
    'x'.repeat(120),
    ...Array.from({ length: 40 }, (_, i) => `project_${i}`),
  ];

  function setup() {
    const replies: Record<string, unknown> = {
      taskCreate: 0,
      taskMove: 'queued',
      taskClaimRun: ['missing', '', ''],
      taskReportProgress: ['processing', '0.1000'],
      taskQueueSnapshot: 1,
      taskSweep: ['young'],
      taskExpireMedia: ['none'],
    };
    const fake = new SlotRecordingRedis(replies);
    const repo = new TaskRepository(fake.asRedis(), config);
    const moves = new TaskStateMachine(fake.asRedis(), repo);
    const fakeQueue = () => new EventEmitter() as unknown as Queue;
    const queues = new TaskQueueService(
      fakeQueue(),
      fakeQueue(),
      fakeQueue(),
      config,
      fake.asRedis(),
    );
    return { fake, replies, repo, moves, queues };
  }

  const result = {
    media_key: 'k',
    content_type: 'image/png',
    payload_media_id: null,
    metadata: {},
  };

  it('every script, transaction and pipeline, for tasks of many projects', async () => {
    const { fake, replies, repo, moves, queues } = setup();
    const ids: string[] = [];
    for (const project of projects) {
      const id = newTaskId(project);
      ids.push(id);
      const task = {
        task_id: id,
        project_id: project,
        task_type: 'generate_image',
        priority: 2 as const,
        task_data: {},
        estimated_duration: 1,
        queue: QueueName.GpuMedium,
        job_id: id,
        created_at: new Date(),
      };
      const idempotencyKey = redisKey(
        projectPartitionPrefix(config.redis.prefix, project),
        'idempotency',
        project,
        'digest',
      );
      await repo.create(task, 3, { key: idempotencyKey, entry: {}, ttlSeconds: 60 });
      await repo.create({ ...task, task_id: newTaskId(project) });
      await moves.claimRun(id, id, { op: 'o', ownLostRuns: [], maxLostRuns: 3, startedAt: 'now' });
      await moves.reportProgress(id, 'r', 0.5, 'step');
      await moves.recordPendingResult(id, 'r', result);
      await moves.complete(id, 'r', result);
      await moves.scheduleRetry(id, 'r', {
        error: 'e',
        errorClass: 'c',
        nextRetryAt: 'later',
        classRetries: {},
      });
      await moves.handBack(id, 'r', { attempts: 1, reason: 'shutdown' });
      await moves.fail(id, 'r', { error: 'e', errorClass: 'c', clearResult: true });
      await moves.failUnqueued(id, 'e');
      await moves.failLost(id, 'e');
      await moves.cancel(id);
      await moves.discardResult(id, 'r');
      await moves.retry(id, { retries: 1, jobId: `${id}_r1`, queuePosition: 2 });
      await moves.requeue(id, 1);
      await moves.recordWebhookOutcome(id, 'msg', { state: 'delivered' }, 'op');
      await repo.sweep(id, Date.now());
      await repo.expireMedia(id, Date.now());
      replies.multi = [id];
      await repo.list(project, { page: 1, limit: 10 });
      await repo.list(project, { page: 1, limit: 10, status: 'queued', task_type: 'x' });
    }
    await repo.runStates(ids);
    for (const queue of ALL_QUEUES) await queues.reserve(queue, 2);

    expect(fake.crossSlot()).toEqual([]);
    const names = new Set(fake.calls.map((c) => c.name));
    expect([...names].sort()).toEqual(
      [
        'multi',
        'pipeline',
        'taskClaimRun',
        'taskCreate',
        'taskMove',
        'taskQueueSnapshot',
        'taskExpireMedia',
        'taskRecordWebhookOutcome',
        'taskReportProgress',
        'taskSweep',
      ].sort(),
    );
    // Scripts that build keys in Lua do so on ARGV[1]: it is in the slot of their KEYS.
    const building = fake.calls.filter((c) => c.lua?.includes('local function k('));
    expect(building.length).toBeGreaterThan(projects.length * 10);
    for (const call of building) {
      expect(slotOf(`${String(call.args[0])}:probe`)).toBe(slotOf(call.keys[0]));
    }
    // runStates asked every task in one pipeline per partition.
    const states = fake.calls.filter(
      (c) => c.name === 'pipeline' && c.keys.every((k) => k.includes(':tasks:')),
    );
    expect(states.flatMap((c) => c.keys).length).toBeGreaterThanOrEqual(ids.length);
  });

  it('the Lua names keys only by KEYS[n], by k(…) on the partition prefix, or by variables bound to them', () => {
    const lua = (Object.entries(scripts) as Array<[string, unknown]>).filter(
      (entry): entry is [string, string] =>
        typeof entry[1] === 'string' && entry[1].includes('redis.call'),
    );
    expect(lua.map(([name]) => name).sort()).toEqual(
      [
        'CLAIM_RUN',
        'CREATE_TASK',
        'EXPIRE_MEDIA',
        'MOVE_TASK',
        'QUEUE_SNAPSHOT',
        'RECORD_WEBHOOK_OUTCOME',
        'REPORT_PROGRESS',
        'SWEEP_TASK',
      ].sort(),
    );
    // tk/pk: apply_transition's parameters (called with KEYS[1], KEYS[2]); proj, pk, key: k(…).
    const keyArg = /^(KEYS\[\d+\]|k\(.*|tk|pk|proj|key)$/;
    for (const [name, source] of lua) {
      for (const [, command, first] of source.matchAll(/redis\.call\('([A-Z]+)',\s*([^,)]+)/g)) {
        if (command === 'PUBLISH') continue;
        expect({ name, command, key: first.trim() }).toEqual({
          name,
          command,
          key: expect.stringMatching(keyArg),
        });
      }
      for (const [, variable, value] of source.matchAll(/local (pk|proj|key|tk) = ([^\n]+)/g)) {
        expect({ name, variable, value }).toEqual({
          name,
          variable,
          value: expect.stringMatching(/^k\(/),
        });
      }
      for (const [, args] of source.matchAll(/apply_transition\(([^,]+, [^,]+),/g)) {
        if (args.startsWith('tk')) continue; // the definition
        expect({ name, args }).toEqual({ name, args: 'KEYS[1], KEYS[2]' });
      }
    }
  });
});
