import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as TfCore from '@tensorflow/tfjs-core';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import type { TfjsBackendName } from '../tfjs-backend.selection';
import { registerCustomLayers } from './custom-layers';
import { ModelConfigError, type ModelConfig } from './model-config';
import { memoryHandler, readTfjsArtifacts, registerFileLoadRouter } from './model-files';
import type { ModelVersionEntry } from './model-source';
import { packageRoot } from './package-models';

const nodeRequire = createRequire(__filename);

/** The Human class of @vladmandic/human (typed loosely: its own .d.ts drags in DOM types). */
export interface HumanInstance {
  config: Record<string, any>;
  load(): Promise<void>;
  detect(input: TfCore.Tensor, config?: Record<string, unknown>): Promise<HumanResult>;
  segmentation(
    input: TfCore.Tensor,
    config?: Record<string, unknown>,
  ): Promise<TfCore.Tensor | null>;
  match: { similarity(a: number[], b: number[], options?: Record<string, number>): number };
  tf: typeof TfCore;
}

/** What `Human.detect` returns, as far as we read it. */
export interface HumanResult {
  error: string | null;
  face: Array<Record<string, any>>;
  body: Array<Record<string, any>>;
  width: number;
  height: number;
}

/** The loaded network behind a model handle, by format. */
export type ModelHandle =
  | { format: 'tfjs-layers'; model: LayersModel }
  | { format: 'tfjs-graph'; model: GraphModel }
  | { format: 'human'; human: HumanInstance };

export interface Loaded {
  handle: ModelHandle;
  /** Bytes of weights it holds in backend memory. */
  bytes: number;
}

/** Loads a version on the running backend. It is not warmed up yet (see `warmUp`). */
export async function loadModel(
  entry: ModelVersionEntry,
  tf: typeof TfCore,
  backend: TfjsBackendName,
): Promise<Loaded> {
  const { config } = entry;
  switch (config.format) {
    case 'tfjs-layers':
    case 'tfjs-graph': {
      const artifacts = entry.artifacts
        ? await entry.artifacts()
        : await readTfjsArtifacts(
            path.join(await entry.localDir(), config.model_file ?? 'model.json'),
          );
      const handler = await memoryHandler(artifacts);
      const bytes = artifacts.weights.byteLength;
      if (config.format === 'tfjs-graph') {
        return { handle: { format: 'tfjs-graph', model: await loadGraphModel(handler) }, bytes };
      }
      registerCustomLayers(tf, config.custom_layers ?? []);
      return { handle: { format: 'tfjs-layers', model: await loadLayersModel(handler) }, bytes };
    }
    case 'human':
      return loadHuman(entry, backend);
  }
}

async function loadHuman(entry: ModelVersionEntry, backend: TfjsBackendName): Promise<Loaded> {
  registerFileLoadRouter();
  const dir = await entry.localDir();
  // The package's `exports` has only conditions (its `node` one needs tfjs-node): require the
  // build that uses our tfjs-core, converter and wasm backend by its path.
  const root = packageRoot('@vladmandic/human');
  if (!root) throw new ModelConfigError('@vladmandic/human is not installed');
  const { Human } = nodeRequire(path.join(root, 'dist', 'human.node-wasm.js')) as {
    Human: new (config: Record<string, unknown>) => HumanInstance;
  };
  const wasmDir = path.dirname(nodeRequire.resolve('@tensorflow/tfjs-backend-wasm'));
  const human = new Human({
    // The backend is ours, already running; Human only checks it.
    backend,
    // Without wasmPath Human falls back to the cpu backend (20× slower) on wasm.
    wasmPath: wasmDir + path.sep,
    wasmPlatformFetch: false,
    modelBasePath: pathToFileURL(dir).href + '/',
    // Every call is a still image: no frame-to-frame caching or skipping.
    cacheSensitivity: 0,
    warmup: 'none',
    debug: false,
    filter: { enabled: false },
    ...(entry.config.human ?? {}),
  });
  await human.load();
  return { handle: { format: 'human', human }, bytes: humanWeightBytes(dir, entry.config) };
}

/** Sum of the weight files of the modules the config enables. */
function humanWeightBytes(dir: string, config: ModelConfig): number {
  const paths = new Set<string>();
  const walk = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    const o = node as Record<string, unknown>;
    if (o.enabled === false) return;
    if (typeof o.modelPath === 'string') paths.add(o.modelPath);
    for (const v of Object.values(o)) walk(v);
  };
  walk(config.human);
  let bytes = 0;
  for (const p of paths) {
    const bin = path.join(dir, p.replace(/\.json$/, '.bin'));
    try {
      bytes += statSync(bin).size;
    } catch {
      // a model whose shards are named otherwise: counted as 0
    }
  }
  return bytes;
}

/** Whether `dir` holds every file `config.files` lists, with the right sizes. */
export async function hasFiles(dir: string, config: ModelConfig): Promise<boolean> {
  for (const f of config.files ?? []) {
    try {
      if (statSync(path.join(dir, f.path)).size !== f.bytes) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * One inference on zeros (the config's warm-up shape, else its inputs with unknown dimensions as
 * 1), so that the first task does not pay for kernel setup and broken weights fail at boot.
 */
export async function warmUp(
  tf: typeof TfCore,
  config: ModelConfig,
  handle: ModelHandle,
): Promise<void> {
  const shapeOf = (shape: readonly (number | null | undefined)[] | undefined): number[] =>
    config.warmup?.shape ?? (shape ?? [1]).map((d) => (d == null || d < 0 ? 1 : d));
  switch (handle.format) {
    case 'tfjs-layers': {
      const inputs = handle.model.inputs.map((t) => tf.zeros(shapeOf(t.shape), t.dtype));
      try {
        const out = handle.model.predict(inputs.length === 1 ? inputs[0] : inputs);
        const outputs = Array.isArray(out) ? out : [out];
        await Promise.all(outputs.map((t) => t.data()));
        tf.dispose(outputs);
      } finally {
        tf.dispose(inputs);
      }
      return;
    }
    case 'tfjs-graph': {
      const named: Record<string, TfCore.Tensor> = {};
      const byName = new Map(
        Object.entries(config.warmup?.inputs ?? {}).map(([k, v]) => [k.replace(/:0$/, ''), v]),
      );
      for (const info of handle.model.inputs) {
        const given = byName.get(info.name.replace(/:0$/, ''));
        named[info.name] = given
          ? tf.fill(given.shape, given.value ?? 0, info.dtype)
          : tf.zeros(shapeOf(info.shape), info.dtype);
      }
      try {
        let out: TfCore.Tensor | TfCore.Tensor[];
        try {
          out = handle.model.execute(named);
        } catch (err) {
          // Graphs with control flow or dynamic shapes only run asynchronously.
          if (!/executeAsync/.test(String(err))) throw err;
          out = await handle.model.executeAsync(named);
        }
        const outputs = Array.isArray(out) ? out : [out];
        await Promise.all(outputs.map((t) => t.data()));
        tf.dispose(outputs);
      } finally {
        tf.dispose(Object.values(named));
      }
      return;
    }
    case 'human': {
      // A mid-grey 64×64 image: every enabled module runs once (they find nothing in it).
      const image = tf.fill([1, 64, 64, 3], 128, 'float32');
      try {
        if (handle.human.config.segmentation?.enabled) {
          const mask = await handle.human.segmentation(image);
          mask?.dispose();
        } else {
          const result = await handle.human.detect(image);
          if (result.error) throw new ModelConfigError(`Human warm-up: ${result.error}`);
        }
      } finally {
        image.dispose();
      }
      return;
    }
  }
}

/**
 * Frees a loaded version. A Human pipeline's networks live in Human's module globals: dropping
 * the instance's references is all that can be done (the repository never evicts one for room).
 */
export function disposeHandle(handle: ModelHandle): void {
  if (handle.format === 'human') {
    const models = (handle.human as unknown as { models?: { reset?: () => void } }).models;
    models?.reset?.();
    return;
  }
  handle.model.dispose();
}

/** Reads a JSON file, naming it in the error. */
export async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new ModelConfigError(`${file}: ${String(err)}`, { cause: err });
  }
}
