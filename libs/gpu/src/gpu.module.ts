import { Global, Module } from '@nestjs/common';
import { GpuService } from './gpu.service';
import { GpuDeviceMonitor } from './gpu-device.monitor';
import { ModelRegistry } from './model-registry';

/**
 * Global because the tfjs engine is one per process: every processor module shares the single
 * GpuService instead of starting its own.
 */
@Global()
@Module({
  providers: [
    GpuService,
    { provide: GpuDeviceMonitor, useFactory: () => new GpuDeviceMonitor() },
    ModelRegistry,
  ],
  exports: [GpuService, GpuDeviceMonitor, ModelRegistry],
})
export class GpuModule {}
