import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { QueueName } from '../queues';
import { bullPrefix, TaskQueueService } from './task-queue.service';

describe('TaskQueueService', () => {
  afterEach(() => jest.restoreAllMocks());
  /** Only reserve() talks to Redis (task-records.e2e-spec.ts runs it on the real one). */
  const noRedis = { defineCommand: () => undefined } as unknown as Redis;

  it('logs queue connection errors, at most once per queue every 10 s, instead of the console', () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const queues = [new EventEmitter(), new EventEmitter(), new EventEmitter()];
    let now = 1_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
    new TaskQueueService(
      ...(queues as unknown as [Queue, Queue, Queue]),
      AppConfig.fromEnv({ API_KEYS: 'k' }),
      noRedis,
    );
    const refused = new Error('connect ECONNREFUSED 127.0.0.1:6379');
    queues[1].emit('error', refused);
    queues[1].emit('error', refused);
    queues[2].emit('error', refused);
    expect(warn.mock.calls.map(([message]) => message as string)).toEqual([
      'queue gpu_medium: connect ECONNREFUSED 127.0.0.1:6379',
      'queue cpu_intensive: connect ECONNREFUSED 127.0.0.1:6379',
    ]);
    now += 10_000;
    queues[1].emit('error', refused);
    expect(warn).toHaveBeenCalledTimes(3);
  });

  /** A stand-in for BullMQ's Queue: records adds and removes, knows a few jobs. */
  class FakeQueue extends EventEmitter {
    added: Array<{ name: string; data: unknown; opts: Record<string, unknown> }> = [];
    removed: string[] = [];
    jobs = new Map<string, { state: string; failedReason?: string }>();
    add(name: string, data: unknown, opts: Record<string, unknown>) {
      this.added.push({ name, data, opts });
      return Promise.resolve();
    }
    remove(id: string) {
      this.removed.push(id);
      return Promise.resolve(this.jobs.delete(id) ? 1 : 0);
    }
    getJob(id: string) {
      const job = this.jobs.get(id);
      return Promise.resolve(
        job && { failedReason: job.failedReason, getState: () => Promise.resolve(job.state) },
      );
    }
  }

  function service() {
    const queues = [new FakeQueue(), new FakeQueue(), new FakeQueue()];
    const svc = new TaskQueueService(
      ...(queues as unknown as [Queue, Queue, Queue]),
      AppConfig.fromEnv({ API_KEYS: 'k', REDIS_PREFIX: 'pfx', QUEUE_MAX_SIZE: '7' }),
      noRedis,
    );
    return { svc, heavy: queues[0], medium: queues[1], cpu: queues[2] };
  }

  it('adds a job under its task type, with the job id and the API priority, run once by BullMQ', async () => {
    const { svc, medium, heavy } = service();
    await svc.enqueue(
      QueueName.GpuMedium,
      'generate_image',
      { task_id: 't', project_id: 'p' },
      't',
      3,
    );
    expect(heavy.added).toEqual([]);
    expect(medium.added).toEqual([
      {
        name: 'generate_image',
        data: { task_id: 't', project_id: 'p' },
        opts: expect.objectContaining({ jobId: 't', priority: 3, attempts: 1 }),
      },
    ]);
  });

  it("names a manual retry's job after the retry", () => {
    expect(TaskQueueService.jobId('t', 0)).toBe('t');
    expect(TaskQueueService.jobId('t', 2)).toBe('t_r2');
  });

  it("names the queue's BullMQ keys under the queue's own hash tag", () => {
    const { svc } = service();
    expect(svc.key(QueueName.CpuIntensive, 'wait')).toBe(
      'pfx:bull:{cpu_intensive}:cpu_intensive:wait',
    );
    expect(bullPrefix('pfx', 'webhooks')).toBe('pfx:bull:{webhooks}');
  });

  it("tells a job's state, and why it failed; a job it does not have is unknown", async () => {
    const { svc, cpu } = service();
    cpu.jobs.set('a', { state: 'failed', failedReason: 'OOM command not allowed' });
    cpu.jobs.set('b', { state: 'delayed' });
    expect(await svc.inspect(QueueName.CpuIntensive, 'a')).toEqual({
      state: 'failed',
      failedReason: 'OOM command not allowed',
    });
    expect(await svc.inspect(QueueName.CpuIntensive, 'b')).toEqual({ state: 'delayed' });
    expect(await svc.inspect(QueueName.CpuIntensive, 'c')).toEqual({ state: 'unknown' });
  });

  it('replaces an ended job: removed first so that its id is free, then added again', async () => {
    const { svc, heavy } = service();
    heavy.jobs.set('v', { state: 'completed' });
    await svc.replace(
      QueueName.GpuHeavy,
      'generate_video',
      { task_id: 'v', project_id: 'p' },
      'v',
      1,
    );
    expect(heavy.removed).toEqual(['v']);
    expect(heavy.added.map((a) => [a.name, a.opts.jobId, a.opts.priority])).toEqual([
      ['generate_video', 'v', 1],
    ]);
  });
});
