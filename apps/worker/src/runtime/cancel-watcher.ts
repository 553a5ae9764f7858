import {
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { CancelBus } from '@app/tasks';
import { TaskCancelledError } from './task-errors';
import { TaskRunner } from './task-runner';

/** How often runs are checked against the store, in case a broadcast was missed (reconnect). */
const RECONCILE_INTERVAL_MS = 2000;

/** Delivers cancels to the runs of this process: broadcast first, a periodic check as backstop. */
@Injectable()
export class CancelWatcher implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(CancelWatcher.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly bus: CancelBus,
    private readonly runner: TaskRunner,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.bus.subscribe((taskId) => this.runner.abort(taskId, new TaskCancelledError()));
    this.timer = setInterval(() => {
      this.runner
        .reconcile()
        .catch((err: Error) => this.logger.warn(`reconcile failed: ${err.message}`));
    }, RECONCILE_INTERVAL_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }
}
