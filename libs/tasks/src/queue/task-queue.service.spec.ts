import { EventEmitter } from 'node:events';
import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { Queue } from 'bullmq';
import { TaskQueueService } from './task-queue.service';

describe('TaskQueueService', () => {
  afterEach(() => jest.restoreAllMocks());

  it('logs queue connection errors, at most once per queue every 10 s, instead of the console', () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const queues = [new EventEmitter(), new EventEmitter(), new EventEmitter()];
    let now = 1_000_000;
    jest.spyOn(Date, 'now').mockImplementation(() => now);
    new TaskQueueService(
      ...(queues as unknown as [Queue, Queue, Queue]),
      AppConfig.fromEnv({ API_KEYS: 'k' }),
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
});
