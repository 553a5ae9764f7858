import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { WorkerStatusRepository } from '@app/workers';
import { readWorkers } from './workers.health';

/**
 * The GPU side of the service, from the workers' heartbeats (the API itself never loads tfjs):
 * the workers whose tensors run on a CUDA device and the GPUs their nvidia-smi read, with memory
 * and utilisation. `gpu: "none"` when no worker that is not offline runs on a GPU; up either way
 * (tasks wait for a GPU worker), down when the heartbeats cannot be read.
 */
@Injectable()
export class GpuWorkersHealthIndicator {
  constructor(
    private readonly workers: WorkerStatusRepository,
    private readonly indicators: HealthIndicatorService,
  ) {}

  async check(key = 'gpu', timeoutMs = 1000) {
    const indicator = this.indicators.check(key);
    const workers = await readWorkers(this.workers, timeoutMs);
    if (workers instanceof Error) {
      return indicator.down({ message: `worker heartbeats unreadable: ${workers.message}` });
    }
    const gpuWorkers = workers.filter((w) => w.status !== 'offline' && w.device === 'gpu');
    if (gpuWorkers.length === 0) {
      const backends = [...new Set(workers.map((w) => w.backend))];
      return indicator.up({
        gpu: 'none',
        gpu_workers: 0,
        message:
          workers.length === 0
            ? 'no worker is running'
            : `no worker runs on a GPU (backends: ${backends.join(', ')})`,
      });
    }
    const gpus = gpuWorkers.flatMap((w) => w.gpus);
    return indicator.up({
      gpu: 'available',
      gpu_workers: gpuWorkers.length,
      gpus: gpus.length,
      memory_used_bytes: gpus.reduce((sum, g) => sum + g.memory_used_bytes, 0),
      memory_total_bytes: gpus.reduce((sum, g) => sum + g.memory_total_bytes, 0),
      workers: gpuWorkers.map((w) => ({
        worker_id: w.worker_id,
        status: w.status,
        gpu_utilization: w.gpu_utilization,
        gpus: w.gpus,
      })),
    });
  }
}
