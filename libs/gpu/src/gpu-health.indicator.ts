import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { GpuDeviceMonitor } from './gpu-device.monitor';
import { GpuService } from './gpu.service';

/**
 * The tfjs backend and the GPUs: down while the backend is not initialised (a worker still
 * loading is not ready); otherwise up, with device name, memory and utilisation from nvidia-smi,
 * or "no GPU" and the backend in use.
 */
@Injectable()
export class GpuHealthIndicator {
  constructor(
    private readonly gpu: GpuService,
    private readonly devices: GpuDeviceMonitor,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key = 'gpu') {
    const indicator = this.indicators.check(key);
    let backend: string;
    try {
      backend = this.gpu.backendName;
    } catch (err) {
      return indicator.down({ message: (err as Error).message });
    }
    const tensors = this.gpu.memory();
    const base = { backend, tensors: tensors.numTensors, tensor_bytes: tensors.numBytes };
    try {
      const devices = await this.devices.devices();
      if (devices.length === 0) return indicator.up({ ...base, gpu: `no GPU, backend ${backend}` });
      return indicator.up({
        ...base,
        gpus: devices.map((d) => ({
          gpu_id: d.index,
          device: d.name,
          memory_used_bytes: d.memoryUsedBytes,
          memory_total_bytes: d.memoryTotalBytes,
          utilization_percent: d.utilizationPercent,
        })),
      });
    } catch (err) {
      // nvidia-smi trouble is reported, but the tensors still run: the worker stays ready.
      return indicator.up({ ...base, gpu: 'unknown', message: (err as Error).message });
    }
  }
}
