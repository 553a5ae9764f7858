import { createRequire } from 'node:module';
import path from 'node:path';
import type { TfjsBackendChoice } from '@app/config';
import * as tf from '@tensorflow/tfjs-core';
// Side-effect imports register the 'wasm' and 'cpu' backends with the engine; neither starts here.
import '@tensorflow/tfjs-backend-cpu';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';

/** Names tfjs gives the backends we may run on (tfjs-node and tfjs-node-gpu both say 'tensorflow'). */
export type TfjsBackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface TfjsBackendSelection {
  readonly choice: TfjsBackendChoice;
  readonly backend: TfjsBackendName;
  readonly device: 'gpu' | 'cpu';
  /** The npm package providing the backend. */
  readonly package: string;
  readonly wasmThreads?: number;
  readonly wasmSimd?: boolean;
  /** Candidates tried before this one under 'auto', with why each was skipped. */
  readonly skipped: readonly string[];
}

/** The configured backend cannot run here; the message names TFJS_BACKEND and the way out. */
export class TfjsBackendError extends Error {
  override readonly name = 'TfjsBackendError';
}

type Candidate = Exclude<TfjsBackendChoice, 'auto'>;

const AUTO_ORDER: readonly Candidate[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

/** The CUDA build of tfjs-node: with it loaded, the process is meant to run on a GPU. */
export const CUDA_TFJS_PACKAGE = '@tensorflow/tfjs-node-gpu';

const PACKAGES: Record<Candidate, string> = {
  'tensorflow-gpu': CUDA_TFJS_PACKAGE,
  tensorflow: '@tensorflow/tfjs-node',
  wasm: '@tensorflow/tfjs-backend-wasm',
  cpu: '@tensorflow/tfjs-backend-cpu',
};

// The tfjs engine is a process global: one selection at a time, shared by every caller.
let current: { choice: TfjsBackendChoice; promise: Promise<TfjsBackendSelection> } | undefined;
let wasmPathsSet = false;

/**
 * Starts the tfjs backend for `choice` once per process and returns what runs. Calls with the same
 * choice share the first call's result; a different choice (only tests do that) switches the
 * global backend after the previous selection settled.
 */
export function selectTfjsBackend(choice: TfjsBackendChoice): Promise<TfjsBackendSelection> {
  if (current?.choice === choice) return current.promise;
  const previous = current?.promise.catch(() => undefined);
  const promise = (async () => {
    await previous;
    const selection = await (choice === 'auto' ? selectAuto() : selectExplicit(choice));
    // tfjs logs with console.warn, around our logger; once a backend runs its messages are only
    // advice ("install tfjs-node"), so silence them (PROD affects logging only).
    tf.env().set('PROD', true);
    return selection;
  })();
  const entry = { choice, promise };
  current = entry;
  // A failed selection is not cached: a later call may try again.
  promise.catch(() => {
    if (current === entry) current = undefined;
  });
  return promise;
}

async function selectAuto(): Promise<TfjsBackendSelection> {
  const skipped: string[] = [];
  for (const candidate of AUTO_ORDER) {
    try {
      return await start(candidate, 'auto', skipped);
    } catch (err) {
      skipped.push(`${candidate}: ${firstLine(err)}`);
    }
  }
  throw new TfjsBackendError(
    `TFJS_BACKEND=auto: no tfjs backend could start (${skipped.join('; ')})`,
  );
}

async function selectExplicit(choice: Candidate): Promise<TfjsBackendSelection> {
  try {
    return await start(choice, choice, []);
  } catch (err) {
    throw new TfjsBackendError(
      `TFJS_BACKEND=${choice}: ${PACKAGES[choice]} cannot run here (${firstLine(err)}). ` +
        `Install it with its native addon, or set TFJS_BACKEND to auto, wasm or cpu.`,
    );
  }
}

async function start(
  candidate: Candidate,
  choice: TfjsBackendChoice,
  skipped: readonly string[],
): Promise<TfjsBackendSelection> {
  const base = { choice, package: PACKAGES[candidate], skipped: [...skipped] };
  switch (candidate) {
    case 'tensorflow-gpu':
    case 'tensorflow': {
      loadNodeBinding(candidate);
      await activate('tensorflow');
      // tfjs-node-gpu runs on the CPU when TensorFlow finds no CUDA device; say so.
      const usesGpu = (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice;
      const device = candidate === 'tensorflow-gpu' && usesGpu !== false ? 'gpu' : 'cpu';
      return { ...base, backend: 'tensorflow', device };
    }
    case 'wasm': {
      if (!wasmPathsSet) {
        // Point at the package's own .wasm files: the default (the script's directory) breaks when
        // this code runs from a bundle in dist/.
        const dist = path.dirname(
          createRequire(__filename).resolve('@tensorflow/tfjs-backend-wasm'),
        );
        setWasmPaths(dist + path.sep);
        wasmPathsSet = true;
      }
      await activate('wasm');
      return {
        ...base,
        backend: 'wasm',
        device: 'cpu',
        wasmThreads: getThreadsCount(),
        wasmSimd: (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true,
      };
    }
    case 'cpu':
      await activate('cpu');
      return { ...base, backend: 'cpu', device: 'cpu' };
  }
}

/**
 * Loads tfjs-node(-gpu) lazily: they are optional, and throw at import when absent or when their
 * native addon is missing. Resolved at run time through createRequire so that a bundler neither
 * fails the build nor bakes in "module missing" when the package is only in the runtime image.
 */
function loadNodeBinding(candidate: 'tensorflow-gpu' | 'tensorflow'): void {
  nodeRequire(PACKAGES[candidate]);
  if (tf.findBackendFactory('tensorflow') == null) {
    throw new Error(
      `${PACKAGES[candidate]} loaded but registered with another copy of @tensorflow/tfjs-core ` +
        `(a version other than ${tf.version_core}, or a test runner's module sandbox)`,
    );
  }
}

function nodeRequire(id: string): unknown {
  return createRequire(__filename)(id);
}

async function activate(name: TfjsBackendName): Promise<void> {
  if (tf.getBackend() === name) return;
  if (!(await tf.setBackend(name))) throw new Error(`tfjs could not initialize backend '${name}'`);
  await tf.ready();
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split('\n')[0] ?? message;
}
