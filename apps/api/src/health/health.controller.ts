import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { RedisHealthIndicator } from '@app/observability';
import { Public } from '../auth/public.decorator';
import { StorageHealthIndicator } from './storage.health';
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
  ) {}

  @Get()
  @HealthCheck()
  @ApiOperation({
    summary: 'Redis, storage and the workers (GPU side); 503 when a dependency is down',
  })
  check() {
    return this.health.check([
      () => this.redis.check(),
      () => this.storage.check(),
      () => this.workers.check(),
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
