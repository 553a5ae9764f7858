import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { withTimeout } from '@app/observability';
import { WorkerStatusRepository, type WorkerStatusRecord } from '@app/workers';

/** Heartbeats within `timeoutMs`, or why they could not be read. */
export async function readWorkers(
  workers: WorkerStatusRepository,
  timeoutMs: number,
): Promise<WorkerStatusRecord[] | Error> {
  try {
    return await withTimeout(workers.list(), timeoutMs);
  } catch (err) {
    return err as Error;
  }
}

/**
 * The workers as the API sees them in their heartbeats: how many, what they do, the tfjs
 * backends they run, and whether any runs on a GPU (`gpu`: true only for a CUDA device, i.e.
 * tfjs-node-gpu; tfjs-node on the CPU is also backend `tensorflow`). Up with no worker at all
 * (tasks wait in their queues); down when the heartbeats cannot be read.
 */
@Injectable()
export class WorkersHealthIndicator {
  constructor(
    private readonly workers: WorkerStatusRepository,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key = 'workers', timeoutMs = 1000) {
    const indicator = this.indicators.check(key);
    const workers = await readWorkers(this.workers, timeoutMs);
    if (workers instanceof Error) {
      return indicator.down({ message: `worker heartbeats unreadable: ${workers.message}` });
    }
    const online = workers.filter((w) => w.status !== 'offline');
    const count = (status: WorkerStatusRecord['status']) =>
      workers.filter((w) => w.status === status).length;
    return indicator.up({
      count: workers.length,
      idle: count('idle'),
      active: count('active'),
      busy: count('busy'),
      offline: count('offline'),
      backends: [...new Set(online.map((w) => w.backend))],
      gpu: online.some((w) => w.device === 'gpu'),
    });
  }
}
