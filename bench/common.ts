import { rmSync } from 'node:fs';

/** One measured figure of a benchmark, with its target when issue 7 sets one. */
export interface BenchRow {
  part: string;
  metric: string;
  value: string;
  /** Target from issue 7, e.g. "≥ 70% of bare"; empty when the figure is informative. */
  target?: string;
  /** true met, false missed, undefined no target. */
  met?: boolean;
}

export interface BenchPart {
  rows: BenchRow[];
  /** Lines printed under the table and written to BENCHMARKS.md (context, caveats). */
  notes: string[];
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)];
}

export function latencySummary(ms: number[]): { p50: number; p95: number; p99: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99) };
}

export const fmt = (n: number, digits = 2): string => n.toFixed(digits);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Rejects after `ms` with a message naming `what`. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `count` calls of `fn` with at most `concurrency` in flight; returns each call's latency (ms). */
export async function runConcurrent(
  count: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
): Promise<{ latencies: number[]; seconds: number }> {
  const latencies: number[] = new Array<number>(count);
  let next = 0;
  const t0 = performance.now();
  const lane = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const t = performance.now();
      await fn(i);
      latencies[i] = performance.now() - t;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return { latencies, seconds: (performance.now() - t0) / 1000 };
}

/** Closes a TestService and removes the media folder its config made. */
export async function closeService(svc: {
  close(): Promise<void>;
  config: { storage: { localDir: string } };
}): Promise<void> {
  try {
    await svc.close();
  } finally {
    rmSync(svc.config.storage.localDir, { recursive: true, force: true });
  }
}
