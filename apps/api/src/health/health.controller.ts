import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { RedisHealthIndicator } from '@app/observability';
import { Public } from '../auth/public.decorator';
import { StorageHealthIndicator } from './storage.health';
import { GpuWorkersHealthIndicator } from './gpu-workers.health';
import { WorkersHealthIndicator } from './workers.health';

@ApiTags('health')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly redis: RedisHealthIndicator,
    private readonly storage: StorageHealthIndicator,
    private readonly workers: WorkersHealthIndicator,
    private readonly gpu: GpuWorkersHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  @ApiOperation({
    summary:
      'Redis, storage, the workers and their GPUs (from heartbeats); 503 when one is down. ' +
      'Also served at GET /health (seed 000)',
  })
  check() {
    return this.health.check([
      () => this.redis.check(),
      () => this.storage.check(),
      () => this.workers.check(),
      () => this.gpu.check(),
    ]);
  }

  @Get('live')
  @HealthCheck()
  @ApiOperation({ summary: 'Liveness: the process answers (no dependency checked)' })
  live() {
    return this.health.check([]);
  }

  @Get('ready')
  @HealthCheck()
  @ApiOperation({
    summary: 'Readiness: Redis answers and storage is reachable, each within a bound',
  })
  ready() {
    return this.health.check([() => this.redis.check(), () => this.storage.check()]);
  }
}
