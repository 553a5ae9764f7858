import { Logger } from '@nestjs/common';
import {
  GpuDeviceMonitor,
  NVIDIA_SMI_ARGS,
  parseNvidiaSmi,
  runCommand,
  type CommandRunner,
} from './gpu-device.monitor';

const MiB = 1024 * 1024;
const TWO_GPUS = '0, NVIDIA A100-SXM4-80GB, 1024, 81920, 37\n1, NVIDIA L4, 0, 23034, [N/A]\n';

function errno(code: string, extra: object = {}): NodeJS.ErrnoException {
  return Object.assign(new Error(`spawn nvidia-smi ${code}`), { code, ...extra });
}

describe('parseNvidiaSmi', () => {
  it('reads index, name, memory in MiB and utilization per line', () => {
    expect(parseNvidiaSmi(TWO_GPUS)).toEqual([
      {
        index: '0',
        name: 'NVIDIA A100-SXM4-80GB',
        memoryUsedBytes: 1024 * MiB,
        memoryTotalBytes: 81920 * MiB,
        utilizationPercent: 37,
      },
      {
        index: '1',
        name: 'NVIDIA L4',
        memoryUsedBytes: 0,
        memoryTotalBytes: 23034 * MiB,
        utilizationPercent: 0,
      },
    ]);
  });

  it('keeps commas inside a device name and refuses a short line', () => {
    expect(parseNvidiaSmi('0, Tesla, rev 2, 1, 2, 3')[0].name).toBe('Tesla,rev 2');
    expect(() => parseNvidiaSmi('0, broken')).toThrow(/unexpected nvidia-smi line/);
  });
});

describe('GpuDeviceMonitor', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));

  it('queries nvidia-smi with the documented arguments and a timeout', async () => {
    const run = jest.fn<ReturnType<CommandRunner>, Parameters<CommandRunner>>(async () => TWO_GPUS);
    const monitor = new GpuDeviceMonitor(run, 1500, 0);
    const devices = await monitor.devices();
    expect(run).toHaveBeenCalledWith('nvidia-smi', NVIDIA_SMI_ARGS, 1500);
    expect(NVIDIA_SMI_ARGS[0]).toBe(
      '--query-gpu=index,name,memory.used,memory.total,utilization.gpu',
    );
    expect(GpuDeviceMonitor.meanUtilization(devices)).toBeCloseTo(0.185);
  });

  it('reads no GPU where nvidia-smi is absent, and stops asking', async () => {
    const run = jest.fn(async () => Promise.reject(errno('ENOENT')));
    const monitor = new GpuDeviceMonitor(run, 1000, 0);
    await expect(monitor.devices()).resolves.toEqual([]);
    await expect(monitor.devices()).resolves.toEqual([]);
    expect(run).toHaveBeenCalledTimes(1);
    expect(GpuDeviceMonitor.meanUtilization([])).toBe(0);
  });

  it('fails devices() on a hung nvidia-smi, while devicesOrNone() reads no GPU', async () => {
    const run = jest.fn(async () => Promise.reject(errno('ETIMEDOUT', { killed: true })));
    const monitor = new GpuDeviceMonitor(run, 10, 0);
    await expect(monitor.devices()).rejects.toThrow('nvidia-smi failed: timed out');
    await expect(monitor.devicesOrNone()).resolves.toEqual([]);
  });

  it('shares one reading between callers within the cache window', async () => {
    const run = jest.fn(async () => TWO_GPUS);
    const monitor = new GpuDeviceMonitor(run, 1000, 60_000);
    await Promise.all([monitor.devices(), monitor.devices(), monitor.devicesOrNone()]);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('kills a command that overruns its timeout', async () => {
    const started = Date.now();
    const run = runCommand('sleep', ['5'], 200);
    await expect(run).rejects.toMatchObject({ killed: true, signal: 'SIGKILL' });
    expect(Date.now() - started).toBeLessThan(2000);
    await expect(runCommand('echo', ['0, X, 1, 2, 3'], 2000)).resolves.toBe('0, X, 1, 2, 3\n');
  });
});
