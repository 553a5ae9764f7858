import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

  it('hands the runner nvidia-smi, its query and the timeout, and averages utilisation', async () => {
    const run = jest.fn<ReturnType<CommandRunner>, Parameters<CommandRunner>>(async () => TWO_GPUS);
    const monitor = new GpuDeviceMonitor(run, 1500, 0);
    const devices = await monitor.devices();
    expect(run).toHaveBeenCalledWith('nvidia-smi', NVIDIA_SMI_ARGS, 1500);
    expect(devices.map((d) => d.name)).toEqual(['NVIDIA A100-SXM4-80GB', 'NVIDIA L4']);
    expect(GpuDeviceMonitor.meanUtilization(devices)).toBeCloseTo(0.185);
  });

  it('fails, naming the line, when nvidia-smi prints what is not its CSV', async () => {
    const monitor = new GpuDeviceMonitor(async () => 'No devices were found\n', 1000, 0);
    await expect(monitor.devices()).rejects.toThrow(
      'nvidia-smi failed: unexpected nvidia-smi line: No devices were found',
    );
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
    const run = runCommand('sleep', ['30'], 200);
    await expect(run).rejects.toMatchObject({ killed: true, signal: 'SIGKILL' });
    expect(Date.now() - started).toBeLessThan(20_000);
    await expect(runCommand('echo', ['0, X, 1, 2, 3'], 2000)).resolves.toBe('0, X, 1, 2, 3\n');
  });
});

/**
 * The real runner against a fake nvidia-smi: a shell script that answers only to the documented
 * query, the way the driver's tool would, or fails the ways it does. (jest gives each test file a
 * copy of process.env, which child processes do not see: the monitor is given the script's path.)
 */
describe('GpuDeviceMonitor running an nvidia-smi', () => {
  let bin: string;
  let smi: string;

  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));
  beforeEach(() => {
    bin = mkdtempSync(path.join(os.tmpdir(), 'ams-smi-'));
    smi = path.join(bin, 'nvidia-smi');
  });
  afterEach(() => rmSync(bin, { recursive: true, force: true }));

  const fakeSmi = (script: string) => {
    writeFileSync(smi, `#!/bin/sh\n${script}\n`);
    chmodSync(smi, 0o755);
  };

  it('reads the GPUs it lists for the query the monitor sends', async () => {
    fakeSmi(
      [
        `if [ "$1" != "${NVIDIA_SMI_ARGS[0]}" ] || [ "$2" != "${NVIDIA_SMI_ARGS[1]}" ]; then`,
        '  echo "Invalid combination of input arguments" >&2; exit 2',
        'fi',
        `printf '${TWO_GPUS.replace(/\n/g, '\\n')}'`,
      ].join('\n'),
    );
    const devices = await new GpuDeviceMonitor(runCommand, 5000, 0, smi).devices();
    expect(devices).toEqual(parseNvidiaSmi(TWO_GPUS));
    expect(devices[0]).toMatchObject({ index: '0', memoryTotalBytes: 81920 * MiB });
  });

  it('fails with the exit code and the message nvidia-smi printed', async () => {
    fakeSmi('echo "Failed to initialize NVML: Driver/library version mismatch"; exit 9');
    const monitor = new GpuDeviceMonitor(runCommand, 5000, 0, smi);
    await expect(monitor.devices()).rejects.toThrow(
      'nvidia-smi failed: exit code 9: Failed to initialize NVML: Driver/library version mismatch',
    );
    expect(monitor.commandMissing).toBe(false);
    // A failure is not remembered as "no nvidia-smi": the next reading asks again.
    fakeSmi(`echo "0, NVIDIA L4, 10, 23034, 5"`);
    await expect(monitor.devices()).resolves.toEqual([
      expect.objectContaining({ name: 'NVIDIA L4', utilizationPercent: 5 }),
    ]);
  });

  it('fails when nvidia-smi hangs past the timeout, and kills it', async () => {
    fakeSmi('sleep 30');
    const started = Date.now();
    await expect(new GpuDeviceMonitor(runCommand, 300, 0, smi).devices()).rejects.toThrow(
      'nvidia-smi failed: timed out after 300 ms',
    );
    // Bounded by the timeout, not by the 30 s the command wanted (generous: the machine is shared).
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('reads no GPU, and remembers it, where there is no nvidia-smi', async () => {
    const monitor = new GpuDeviceMonitor(runCommand, 5000, 0, smi);
    await expect(monitor.devices()).resolves.toEqual([]);
    expect(monitor.commandMissing).toBe(true);
  });
});
