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
      gpu_expected: false,
      tensors: expect.any(Number),
    });
    expect(gpu.usesGpu).toBe(false);
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

  it('stays up, saying why, when nvidia-smi fails and no GPU is expected', async () => {
    const gpu = new GpuService(config());
    await gpu.init();
    const broken = new GpuDeviceMonitor(async () => Promise.reject(new Error('NVML mismatch')));
    const result = await new GpuHealthIndicator(gpu, broken, new HealthIndicatorService()).check();
    expect(result.gpu).toMatchObject({ status: 'up', gpu: 'unknown', gpu_expected: false });
    expect((result.gpu as { message?: string }).message).toContain('NVML mismatch');
  });

  describe('with the CUDA backend (tfjs-node-gpu) loaded', () => {
    // tfjs-node-gpu cannot be installed here: the service reports what it would once loaded.
    const cuda = {
      backendName: 'tensorflow',
      expectsGpu: true,
      memory: () => ({ numTensors: 3, numDataBuffers: 3, numBytes: 12, unreliable: false }),
    } as unknown as GpuService;
    const check = (monitor: GpuDeviceMonitor) =>
      new GpuHealthIndicator(cuda, monitor, new HealthIndicatorService()).check();

    it('is down, with nvidia-smi’s reason, when the GPU cannot be read', async () => {
      const broken = new GpuDeviceMonitor(async () =>
        Promise.reject(
          Object.assign(new Error('Command failed: nvidia-smi'), {
            code: 9,
            stdout: 'Failed to initialize NVML: Driver/library version mismatch\n',
          }),
        ),
      );
      const result = await check(broken);
      expect(result.gpu).toMatchObject({
        status: 'down',
        backend: 'tensorflow',
        gpu_expected: true,
        gpu: 'unreadable',
        message:
          'a GPU is expected (@tensorflow/tfjs-node-gpu is loaded) but nvidia-smi failed: ' +
          'exit code 9: Failed to initialize NVML: Driver/library version mismatch',
      });
    });

    it('is down when nvidia-smi is missing or lists no GPU', async () => {
      const missing = new GpuDeviceMonitor(async () =>
        Promise.reject(Object.assign(new Error('spawn nvidia-smi ENOENT'), { code: 'ENOENT' })),
      );
      expect((await check(missing)).gpu).toMatchObject({
        status: 'down',
        message: expect.stringMatching(/but nvidia-smi is not on the PATH$/),
      });
      const none = new GpuDeviceMonitor(async () => '');
      expect((await check(none)).gpu).toMatchObject({
        status: 'down',
        message: expect.stringMatching(/but nvidia-smi lists no GPU$/),
      });
    });

    it('is up with the devices when nvidia-smi reads them', async () => {
      const smi = new GpuDeviceMonitor(async () => '0, NVIDIA L4, 2048, 23034, 64\n');
      expect((await check(smi)).gpu).toMatchObject({
        status: 'up',
        gpu_expected: true,
        gpus: [{ gpu_id: '0', device: 'NVIDIA L4', utilization_percent: 64 }],
      });
    });
  });
});
