import { Global, Module } from '@nestjs/common';
import { GpuService } from './gpu.service';

/**
 * Global because the tfjs engine is one per process: every processor module shares the single
 * GpuService instead of starting its own.
 */
@Global()
@Module({
  providers: [GpuService],
  exports: [GpuService],
})
export class GpuModule {}
