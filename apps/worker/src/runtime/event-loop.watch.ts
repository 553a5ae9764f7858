import { performance } from 'node:perf_hooks';
import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { AppConfig } from '@app/config';
import { TaskRunner } from './task-runner';

/** A tick this often; a tick that comes late measures how long the loop was held. */
const TICK_MS = 100;

/**
 * Warns when synchronous work held the event loop long enough to endanger BullMQ's job locks:
 * they are renewed every lockDuration/2, and a lock that runs out makes the job look stalled, so
 * another worker starts it again. Processors must work in chunks and yield between them; the
 * first tick after a block names the tasks that were running (none of them can have finished
 * in between: finishing takes Redis round trips).
 */
@Injectable()
export class EventLoopWatch implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(EventLoopWatch.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly runner: TaskRunner,
    private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    const lockMs = this.config.worker.lockDurationMs;
    let last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      const blockedMs = now - last - TICK_MS;
      last = now;
      if (blockedMs < lockMs / 2) return;
      const running = this.runner.activeTaskIds();
      this.logger.warn(
        `event loop blocked for ${Math.round(blockedMs)} ms (job locks last ${lockMs} ms, ` +
          `renewed every ${lockMs / 2} ms)${running.length > 0 ? `; running: ${running.join(', ')}` : ''}`,
      );
    }, TICK_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }
}
