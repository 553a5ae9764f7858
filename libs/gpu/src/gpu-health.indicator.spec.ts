import { Logger } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { AppConfig } from '@app/config';
import { GpuDeviceMonitor } from './gpu-device.monitor';
import { GpuHealthIndicator } from './gpu-health.indicator';
import { GpuService } from './gpu.service';

const config = () => AppConfig.fromEnv({ API_KEYS: 'k', TFJS_BACKEND: 'wasm' });

describe('GpuHealthIndicator', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));

  it('is down while the tfjs backend is not initialised', async () => {
    const gpu = new GpuService(config());
    const indicator = new GpuHealthIndicator(
      gpu,
      new GpuDeviceMonitor(async () => ''),
      new HealthIndicatorService(),
    );
    const result = await indicator.check();
    expect(result.gpu.status).toBe('down');
    expect((result.gpu as { message?: string }).message).toMatch(/not initialized/);
  });

  it('says "no GPU, backend wasm" without nvidia-smi', async () => {
    const gpu = new GpuService(config());
    await gpu.init();
    const noSmi = new GpuDeviceMonitor(async () =>
      Promise.reject(Object.assign(new Error('spawn nvidia-smi ENOENT'), { code: 'ENOENT' })),
    );
    const result = await new GpuHealthIndicator(gpu, noSmi, new HealthIndicatorService()).check();
    expect(result.gpu).toMatchObject({
      status: 'up',
      backend: 'wasm',
      gpu: 'no GPU, backend wasm',
      tensors: expect.any(Number),
    });
  });

  it('reports device, memory and utilization from nvidia-smi', async () => {
    const gpu = new GpuService(config());
    await gpu.init();
    const smi = new GpuDeviceMonitor(async () => '0, NVIDIA L4, 2048, 23034, 64\n');
    const result = await new GpuHealthIndicator(gpu, smi, new HealthIndicatorService()).check();
    expect(result.gpu).toMatchObject({
      status: 'up',
      gpus: [
        {
          gpu_id: '0',
          device: 'NVIDIA L4',
          memory_used_bytes: 2048 * 1024 * 1024,
          memory_total_bytes: 23034 * 1024 * 1024,
          utilization_percent: 64,
        },
      ],
    });
  });

  it('stays up, saying why, when nvidia-smi fails', async () => {
    const gpu = new GpuService(config());
    await gpu.init();
    const broken = new GpuDeviceMonitor(async () => Promise.reject(new Error('NVML mismatch')));
    const result = await new GpuHealthIndicator(gpu, broken, new HealthIndicatorService()).check();
    expect(result.gpu).toMatchObject({ status: 'up', gpu: 'unknown' });
    expect((result.gpu as { message?: string }).message).toContain('NVML mismatch');
  });
});
