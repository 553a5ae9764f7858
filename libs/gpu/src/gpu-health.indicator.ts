import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { GpuDeviceMonitor, type GpuDeviceStats } from './gpu-device.monitor';
import { GpuService } from './gpu.service';
import { CUDA_TFJS_PACKAGE } from './tfjs-backend.selection';

/**
 * The tfjs backend and the GPUs: down while the backend is not initialised (a worker still
 * loading is not ready); otherwise up, with device name, memory and utilisation from nvidia-smi,
 * or "no GPU" and the backend in use. When the CUDA backend (tfjs-node-gpu) is loaded a GPU is
 * expected: then a GPU that cannot be read (nvidia-smi missing, failing, hanging, listing none)
 * is down, with the reason. Without it, nvidia-smi trouble is reported but the tensors run on the
 * CPU anyway, so it stays up.
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
    let expected: boolean;
    try {
      backend = this.gpu.backendName;
      expected = this.gpu.expectsGpu;
    } catch (err) {
      return indicator.down({ message: (err as Error).message });
    }
    const tensors = this.gpu.memory();
    const base = {
      backend,
      gpu_expected: expected,
      tensors: tensors.numTensors,
      tensor_bytes: tensors.numBytes,
    };
    const expectedButUnread = (why: string) =>
      indicator.down({
        ...base,
        gpu: 'unreadable',
        message: `a GPU is expected (${CUDA_TFJS_PACKAGE} is loaded) but ${why}`,
      });
    let devices: GpuDeviceStats[];
    try {
      devices = await this.devices.devices();
    } catch (err) {
      if (expected) return expectedButUnread((err as Error).message);
      return indicator.up({ ...base, gpu: 'unknown', message: (err as Error).message });
    }
    if (devices.length === 0) {
      if (expected) {
        return expectedButUnread(
          this.devices.commandMissing ? 'nvidia-smi is not on the PATH' : 'nvidia-smi lists no GPU',
        );
      }
      return indicator.up({ ...base, gpu: `no GPU, backend ${backend}` });
    }
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
  }
}
