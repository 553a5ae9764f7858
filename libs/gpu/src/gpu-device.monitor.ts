import { execFile } from 'node:child_process';
import { Logger } from '@nestjs/common';

/** One GPU as nvidia-smi reports it. */
export interface GpuDeviceStats {
  /** nvidia-smi's index: the gpu_id label of gpu_utilization_percent. */
  index: string;
  name: string;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  /** 0..100 */
  utilizationPercent: number;
}

export const NVIDIA_SMI_ARGS = [
  '--query-gpu=index,name,memory.used,memory.total,utilization.gpu',
  '--format=csv,noheader,nounits',
];

/** Runs a command and resolves its stdout; injectable so tests can play nvidia-smi. */
export type CommandRunner = (file: string, args: string[], timeoutMs: number) => Promise<string>;

/** How a CommandRunner fails: execFile's error with what the command printed. */
export interface CommandError extends Error {
  /** 'ENOENT' when the command is not found; the exit code when it ran and failed. */
  code?: string | number;
  killed?: boolean;
  signal?: NodeJS.Signals | null;
  stdout?: string;
  stderr?: string;
}

/** execFile bounded by `timeoutMs`: the process is killed (SIGKILL) when it overruns. */
export const runCommand: CommandRunner = (file, args, timeoutMs) =>
  new Promise<string>((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      // Keeps code (ENOENT or the exit code), killed and signal (timeout) on a plain Error.
      if (err) reject(Object.assign(new Error(err.message), err, { stdout, stderr }));
      else resolve(stdout);
    });
  });

/** Why nvidia-smi gave no reading, in words for a health check: its own first line if it said one. */
function failureReason(err: CommandError, timeoutMs: number): string {
  if (err.killed) return `timed out after ${timeoutMs} ms`;
  // nvidia-smi prints its errors ("Failed to initialize NVML: ...") on stdout.
  const said = `${err.stderr ?? ''}\n${err.stdout ?? ''}`
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line.length > 0);
  if (typeof err.code === 'number') return `exit code ${err.code}${said ? `: ${said}` : ''}`;
  return said ?? err.message;
}

/** Parses `index, name, memory.used [MiB], memory.total [MiB], utilization.gpu [%]` lines. */
export function parseNvidiaSmi(output: string): GpuDeviceStats[] {
  const MiB = 1024 * 1024;
  return output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const parts = line.split(',').map((p) => p.trim());
      if (parts.length < 5) throw new Error(`unexpected nvidia-smi line: ${line}`);
      // A name may itself hold commas: the four numbers are the last fields.
      const [util, total, used] = [parts.pop()!, parts.pop()!, parts.pop()!];
      const [index, ...name] = parts;
      const num = (v: string) => (/^\d+(\.\d+)?$/.test(v) ? Number(v) : 0); // "[N/A]" → 0
      return {
        index,
        name: name.join(','),
        memoryUsedBytes: num(used) * MiB,
        memoryTotalBytes: num(total) * MiB,
        utilizationPercent: num(util),
      };
    });
}

/**
 * Reads the GPUs through nvidia-smi (tfjs cannot report VRAM or load). Every call is bounded by a
 * timeout, results are shared for a second so that heartbeat, scrape and probe do not each spawn
 * a process, and a machine without nvidia-smi is remembered as such. Provided by a factory (its
 * constructor takes the command runner tests substitute).
 */
export class GpuDeviceMonitor {
  private readonly logger = new Logger(GpuDeviceMonitor.name);
  private absent = false;
  private cached?: { at: number; value: Promise<GpuDeviceStats[]> };
  private warned = false;

  constructor(
    private readonly run: CommandRunner = runCommand,
    private readonly timeoutMs = 2000,
    private readonly cacheMs = 1000,
    /** The nvidia-smi to run: looked up on the PATH unless a path is given (tests give one). */
    private readonly command = 'nvidia-smi',
  ) {}

  /** nvidia-smi was not found (ENOENT): devices() reads no GPU without asking again. */
  get commandMissing(): boolean {
    return this.absent;
  }

  /**
   * The GPUs, [] where there is no nvidia-smi; rejects, saying why, when nvidia-smi fails (exit
   * code and its message), hangs past the timeout, or prints what is not its CSV.
   */
  async devices(): Promise<GpuDeviceStats[]> {
    if (this.absent) return [];
    const now = Date.now();
    if (this.cached && now - this.cached.at < this.cacheMs) return this.cached.value;
    const value = this.run(this.command, NVIDIA_SMI_ARGS, this.timeoutMs).then(
      (output) => {
        try {
          return parseNvidiaSmi(output);
        } catch (err) {
          throw new Error(`nvidia-smi failed: ${(err as Error).message}`, { cause: err });
        }
      },
      (err: CommandError) => {
        if (err.code === 'ENOENT') {
          this.absent = true;
          return [];
        }
        throw new Error(`nvidia-smi failed: ${failureReason(err, this.timeoutMs)}`);
      },
    );
    this.cached = { at: now, value };
    value.catch(() => undefined);
    return value;
  }

  /** Like devices(), but a failure is logged once and reads as no GPU (for heartbeats, metrics). */
  async devicesOrNone(): Promise<GpuDeviceStats[]> {
    try {
      const devices = await this.devices();
      this.warned = false;
      return devices;
    } catch (err) {
      if (!this.warned) this.logger.warn((err as Error).message);
      this.warned = true;
      return [];
    }
  }

  /** Mean utilisation of the GPUs as a fraction 0..1 (the heartbeat's gpu_utilization). */
  static meanUtilization(devices: GpuDeviceStats[]): number {
    if (devices.length === 0) return 0;
    return devices.reduce((sum, d) => sum + d.utilizationPercent, 0) / devices.length / 100;
  }
}
