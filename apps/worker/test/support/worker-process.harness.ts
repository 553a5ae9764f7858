import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../../../..');
const ENTRY = path.join(__dirname, 'worker-process.ts');

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Date.now() when the process exited. */
  at: number;
}

/**
 * A worker in a process of its own (worker-process.ts under ts-node), so a test can SIGKILL or
 * SIGTERM it. Its output is kept for the failure message of a test.
 */
export class WorkerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  output = '';
  private exit?: ExitInfo;

  constructor(env: Record<string, string>, evidenceFile: string) {
    this.child = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', ENTRY],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          TS_NODE_PROJECT: path.join(ROOT, 'tsconfig.json'),
          WORKER_PROCESS_ENV: JSON.stringify(env),
          WORKER_PROCESS_EVIDENCE: evidenceFile,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    this.child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal, at: Date.now() };
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Resolves once the worker has booted and consumes its queues. */
  async ready(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes('WORKER_READY')) {
      if (!this.running) throw new Error(`worker process exited during boot:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`worker process not ready:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Kills it hard if it still runs (test cleanup). */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** The runs a worker process reported: one entry per line `<start|finish> <task id> <pid>`. */
export function readEvidence(file: string): Array<{ event: string; taskId: string; pid: number }> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [event, taskId, pid] = line.split(' ');
      return { event, taskId, pid: Number(pid) };
    });
}
