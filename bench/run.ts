import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BenchPart, type BenchRow } from './common';

/**
 * `npm run bench [-- <part> ...]`. Each part runs in a child process of its own (a clean heap for
 * the memory figures, nothing left over between parts) under a time limit; this process collects
 * the rows, prints the table and writes BENCHMARKS.md.
 */
const PARTS: Record<string, { load: () => Promise<BenchPart>; limitMs: number }> = {
  media: {
    load: async () => (await import('./media.bench')).mediaBench(),
    limitMs: 8 * 60_000,
  },
  submit: {
    load: async () => (await import('./submit.bench')).submitBench(),
    limitMs: 4 * 60_000,
  },
  overhead: {
    load: async () => (await import('./overhead.bench')).overheadBench(),
    limitMs: 6 * 60_000,
  },
  'redis-cost': {
    load: async () => (await import('./redis-cost.bench')).redisCostBench(),
    limitMs: 12 * 60_000,
  },
  memory: {
    load: async () => (await import('./memory.bench')).memoryBench(),
    limitMs: 9 * 60_000,
  },
  'redis-memory': {
    load: async () => (await import('./redis-memory.bench')).redisMemoryBench(),
    limitMs: 6 * 60_000,
  },
  upscale: {
    load: async () => modelPart(await (await import('./upscale.bench')).upscaleBenchRows()),
    limitMs: 15 * 60_000,
  },
  segmentation: {
    load: async () =>
      modelPart(await (await import('./segmentation.bench')).segmentationBenchRows()),
    limitMs: 6 * 60_000,
  },
  character: {
    load: async () => modelPart(await (await import('./character.bench')).characterBenchRows()),
    limitMs: 8 * 60_000,
  },
  safety: {
    load: async () => modelPart(await (await import('./safety.bench')).safetyBenchRows()),
    limitMs: 5 * 60_000,
  },
};

/** The trained-network benchmarks report rows only; their caveat is the same one. */
function modelPart(rows: BenchRow[]): BenchPart {
  return {
    rows,
    notes: [
      `${rows[0]?.part ?? 'model'}: trained networks on the backend named in each figure (no GPU ` +
        'here: wasm on 2 shared cores; a CUDA worker runs them on tfjs-node-gpu).',
    ],
  };
}

/** A benchmark prints its results: that is its whole point. */
function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function sayErr(text: unknown): void {
  process.stderr.write(`${text instanceof Error ? (text.stack ?? text.message) : String(text)}\n`);
}

function table(rows: BenchRow[]): string {
  const head = ['part', 'figure', 'value', 'target', 'met'];
  const body = rows.map((r) => [
    r.part,
    r.metric,
    r.value,
    r.target ?? '',
    r.met === undefined ? '' : r.met ? 'yes' : 'NO',
  ]);
  return [head, head.map(() => '---'), ...body].map((c) => `| ${c.join(' | ')} |`).join('\n');
}

/** In the child: run one part, write its rows as JSON to BENCH_RESULT_FILE. */
async function child(name: string, resultFile: string): Promise<void> {
  const part = await PARTS[name].load();
  writeFileSync(resultFile, JSON.stringify(part));
}

/** Runs one part in a child process with this process's Node flags; killed at its limit. */
function runPart(name: string, dir: string): Promise<BenchPart> {
  const resultFile = path.join(dir, `${name}.json`);
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...process.execArgv, __filename, name], {
      env: { ...process.env, BENCH_RESULT_FILE: resultFile },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${name}: killed after ${PARTS[name].limitMs / 1000} s`));
    }, PARTS[name].limitMs);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`${name}: exited with ${code ?? signal}`));
        return;
      }
      try {
        resolve(JSON.parse(readFileSync(resultFile, 'utf8')) as BenchPart);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  });
}

async function main(): Promise<void> {
  const resultFile = process.env.BENCH_RESULT_FILE;
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  if (resultFile) return child(wanted[0], resultFile);
  const names = wanted.length > 0 ? wanted : Object.keys(PARTS);
  const unknown = names.filter((n) => !PARTS[n]);
  if (unknown.length > 0) {
    sayErr(`unknown benchmark ${unknown.join(', ')}; choose from ${Object.keys(PARTS).join(', ')}`);
    process.exit(2);
  }
  const started = new Date();
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const failed: string[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'movie-task-bench-'));
  try {
    for (const name of names) {
      say(`» ${name} …`);
      const t0 = performance.now();
      try {
        const part = await runPart(name, dir);
        rows.push(...part.rows);
        notes.push(...part.notes);
        say(`  ${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      } catch (err) {
        sayErr(err);
        failed.push(name);
        rows.push({ part: name, metric: 'FAILED', value: (err as Error).message });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const command = `npm run bench${wanted.length > 0 ? ` -- ${wanted.join(' ')}` : ''}`;
  const cpus = os.cpus();
  const machine = `${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, ${os.platform()} ${os.release()}, Node ${process.version}, no GPU`;
  const out = table(rows);
  say(`\n${out}\n`);
  for (const n of notes) say(`- ${n}`);
  const md = [
    '# Benchmarks',
    '',
    `- Date: ${started.toISOString()}`,
    `- Machine: ${machine}`,
    `- Command: \`${command}\` (total ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s)`,
    '- Redis: the real one of this machine (127.0.0.1:6379), each benchmark under its own key prefix, removed afterwards. Loopback only. Each part in a process of its own.',
    '- Targets are the ratios of issue 7, measured side by side in this one run.',
    '',
    out,
    '',
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
  writeFileSync(path.join(__dirname, '..', 'BENCHMARKS.md'), md);
  say('\nwritten BENCHMARKS.md');
  if (failed.length > 0) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (err) => {
    sayErr(err);
    process.exit(1);
  },
);
