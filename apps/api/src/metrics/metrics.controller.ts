import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/public.decorator';
import { ApiMetrics } from './api-metrics.service';

/**
 * GET /metrics (outside api/v1, no API key: Prometheus scrapes without headers; keep the port
 * off the public ingress). Serves this app's registry, not prom-client's global one.
 */
@ApiExcludeController()
@Public()
@Controller()
export class MetricsController extends PrometheusController {
  constructor(private readonly metrics: ApiMetrics) {
    super();
  }

  @Get()
  override async index(@Res({ passthrough: true }) response: FastifyReply): Promise<string> {
    void response.header('content-type', this.metrics.registry.contentType);
    return this.metrics.scrape();
  }
}
