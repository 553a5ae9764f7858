import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { AppConfig } from '@app/config';
import type { FastifyInstance } from 'fastify';

/** The API never drains longer than this, whatever SHUTDOWN_GRACE says (api.yaml allows 30 s). */
export const MAX_API_DRAIN_SECONDS = 20;

/** How long the API lets in-flight requests finish on shutdown. */
export function apiDrainSeconds(config: AppConfig): number {
  return Math.min(config.worker.shutdownGraceSeconds, MAX_API_DRAIN_SECONDS);
}

/**
 * Drains HTTP first on shutdown. Nest closes the server only after every onModuleDestroy hook,
 * and those close clients that requests still use (S3, the outbound agent), so this hook, in the
 * root module, runs before them: Fastify stops accepting, answers requests arriving on open
 * connections with 503 (return503OnClosing), closes idle connections and waits for in-flight
 * requests, for at most apiDrainSeconds; then it cuts the remaining connections.
 */
@Injectable()
export class HttpDrain implements OnModuleDestroy {
  private readonly logger = new Logger(HttpDrain.name);

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly config: AppConfig,
  ) {}

  async onModuleDestroy(): Promise<void> {
    const fastify = this.adapterHost.httpAdapter?.getInstance<FastifyInstance>();
    if (!fastify?.server.listening) return;
    const bound = apiDrainSeconds(this.config);
    let timer: NodeJS.Timeout | undefined;
    const cut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.logger.warn(`requests still running after ${bound} s of shutdown; closing them`);
        fastify.server.closeAllConnections();
        resolve();
      }, bound * 1000);
    });
    try {
      await Promise.race([fastify.close(), cut]);
    } finally {
      clearTimeout(timer);
    }
  }
}
