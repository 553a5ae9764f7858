import {
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';

export type WorkerPhase = 'starting' | 'running' | 'stopping';

/**
 * Where the worker is in its life. Provided by the root WorkerModule, whose bootstrap hook Nest
 * calls after those of every imported module: by then tfjs is up, every processor module has
 * loaded and warmed its models, and the consumers poll. Before that the worker is live but not
 * ready; once shutdown begins it is not ready either, so no new traffic is routed to it.
 */
@Injectable()
export class WorkerReadiness implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private current: WorkerPhase = 'starting';
  private readonly since = Date.now();

  constructor(private readonly indicators: HealthIndicatorService) {}

  get phase(): WorkerPhase {
    return this.current;
  }

  onApplicationBootstrap(): void {
    this.current = 'running';
  }

  beforeApplicationShutdown(): void {
    this.markStopping();
  }

  /** Shutdown has begun (a signal, before Nest's own hooks): no longer ready. */
  markStopping(): void {
    this.current = 'stopping';
  }

  check(key = 'worker') {
    const indicator = this.indicators.check(key);
    const details = { phase: this.current, uptime_s: Math.round((Date.now() - this.since) / 1000) };
    return this.current === 'running' ? indicator.up(details) : indicator.down(details);
  }
}
