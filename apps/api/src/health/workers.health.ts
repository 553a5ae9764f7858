import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { WorkerStatusRepository } from '@app/workers';
import { withTimeout } from '@app/observability';

/**
 * The GPU side as the API sees it: live workers and the tfjs backends they run. Informational:
 * the API stays healthy with no worker up (tasks wait in their queues).
 */
@Injectable()
export class WorkersHealthIndicator {
  constructor(
    private readonly workers: WorkerStatusRepository,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key = 'workers', timeoutMs = 1000) {
    const indicator = this.indicators.check(key);
    try {
      const workers = await withTimeout(this.workers.list(), timeoutMs);
      return indicator.up({
        count: workers.length,
        busy: workers.filter((w) => w.status === 'busy').length,
        backends: [...new Set(workers.map((w) => w.backend))],
        gpu: workers.some((w) => w.backend === 'tensorflow') ? 'available' : 'no GPU worker',
      });
    } catch (err) {
      return indicator.up({ count: null, message: (err as Error).message });
    }
  }
}
