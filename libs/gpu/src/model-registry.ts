import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type * as TfCore from '@tensorflow/tfjs-core';
import { io } from '@tensorflow/tfjs-core';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import { GpuService } from './gpu.service';

export type ModelKind = 'graph' | 'layers';

export type LoadedModel =
  | {
      readonly name: string;
      readonly kind: 'graph';
      readonly model: GraphModel;
      readonly bytes: number;
    }
  | {
      readonly name: string;
      readonly kind: 'layers';
      readonly model: LayersModel;
      readonly bytes: number;
    };

export interface LoadedModelInfo {
  name: string;
  /** Bytes of the model's weights (what it holds in backend memory). */
  bytes: number;
  kind: ModelKind;
  /** ISO time of the load. */
  loadedAt: string;
}

interface Entry {
  loaded: LoadedModel;
  loadedAt: Date;
  lastUsed: number;
  /** Runs currently using the model: it is not disposed under them. */
  pins: number;
  evicted: boolean;
}

/** A model directory name: one path segment of safe characters. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export class ModelRegistryError extends Error {
  override readonly name = 'ModelRegistryError';
}

/**
 * The tfjs models of this process, from MODELS_DIR/<name>/model.json (GraphModel or
 * LayersModel, told apart by the file's `format`). Loads once, warms each model up with one
 * inference on zeros (so the first task does not pay for kernel setup), and keeps models in an
 * LRU cache bounded by MODEL_CACHE_BYTES of weights. A model in use (see `use`) is never disposed
 * under its user: when evicted it is disposed at release.
 */
@Injectable()
export class ModelRegistry implements OnModuleDestroy {
  private readonly logger = new Logger(ModelRegistry.name);
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private clock = 0;

  constructor(
    private readonly config: AppConfig,
    private readonly gpu: GpuService,
  ) {}

  /** Whether MODELS_DIR holds a model of that name (a processor falls back to its built-in net). */
  has(name: string): boolean {
    return MODEL_NAME.test(name) && existsSync(this.modelJsonPath(name));
  }

  /** What is in memory now, most recently used first. */
  loaded(): LoadedModelInfo[] {
    return [...this.entries.values()]
      .sort((a, b) => b.lastUsed - a.lastUsed)
      .map((e) => ({
        name: e.loaded.name,
        bytes: e.loaded.bytes,
        kind: e.loaded.kind,
        loadedAt: e.loadedAt.toISOString(),
      }));
  }

  /** Bytes of weights held by cached models. */
  get usedBytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.loaded.bytes;
    return sum;
  }

  /**
   * Runs `fn` with the model loaded and pinned: eviction by other loads waits until `fn` ends.
   * Prefer this to `get` whenever the model is used across awaits.
   */
  async use<T>(name: string, fn: (model: LoadedModel) => Promise<T> | T): Promise<T> {
    const entry = await this.entry(name);
    entry.pins += 1;
    try {
      return await fn(entry.loaded);
    } finally {
      entry.pins -= 1;
      if (entry.evicted && entry.pins === 0) this.disposeEntry(entry);
    }
  }

  /** The model, loading it if needed. It may be disposed by a later load: use `use` across awaits. */
  async get(name: string): Promise<LoadedModel> {
    return (await this.entry(name)).loaded;
  }

  /** Drops a model from the cache (disposed now, or when its last user releases it). */
  evict(name: string): boolean {
    const entry = this.entries.get(name);
    if (!entry) return false;
    this.entries.delete(name);
    entry.evicted = true;
    if (entry.pins === 0) this.disposeEntry(entry);
    this.logger.log(`evicted model ${name} (${entry.loaded.bytes} bytes)`);
    return true;
  }

  onModuleDestroy(): void {
    for (const name of [...this.entries.keys()]) this.evict(name);
  }

  private async entry(name: string): Promise<Entry> {
    const cached = this.entries.get(name);
    if (cached) {
      cached.lastUsed = ++this.clock;
      return cached;
    }
    // Two tasks asking for the same model at once share one load.
    let pending = this.loading.get(name);
    if (!pending) {
      pending = this.load(name).finally(() => this.loading.delete(name));
      this.loading.set(name, pending);
    }
    const entry = await pending;
    entry.lastUsed = ++this.clock;
    return entry;
  }

  private async load(name: string): Promise<Entry> {
    if (!MODEL_NAME.test(name))
      throw new ModelRegistryError(`invalid model name: ${JSON.stringify(name)}`);
    const file = this.modelJsonPath(name);
    if (!existsSync(file)) throw new ModelRegistryError(`no model ${name}: ${file} does not exist`);
    await this.gpu.init();
    const started = Date.now();
    const { handler, kind, bytes } = await fileHandler(file);
    const budget = this.config.gpu.modelCacheBytes;
    if (bytes > budget) {
      throw new ModelRegistryError(
        `model ${name} has ${bytes} bytes of weights, more than MODEL_CACHE_BYTES (${budget})`,
      );
    }
    this.makeRoom(bytes, budget);
    const loaded: LoadedModel =
      kind === 'graph'
        ? { name, kind, model: await loadGraphModel(handler), bytes }
        : { name, kind, model: await loadLayersModel(handler), bytes };
    try {
      await warmUp(this.gpu.tf, loaded);
    } catch (err) {
      loaded.model.dispose();
      throw new ModelRegistryError(`model ${name} failed its warm-up inference: ${String(err)}`, {
        cause: err,
      });
    }
    // A concurrent load of another model may have filled the cache meanwhile.
    this.makeRoom(bytes, budget);
    const entry: Entry = {
      loaded,
      loadedAt: new Date(),
      lastUsed: ++this.clock,
      pins: 0,
      evicted: false,
    };
    this.entries.set(name, entry);
    this.logger.log(
      `loaded ${kind} model ${name} (${bytes} bytes of weights) in ${Date.now() - started} ms on ` +
        `${this.gpu.backendName}; cache ${this.usedBytes}/${budget} bytes`,
    );
    return entry;
  }

  /** Evicts least recently used models until `bytes` more fit in `budget`. */
  private makeRoom(bytes: number, budget: number): void {
    const lru = [...this.entries.values()].sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of lru) {
      if (this.usedBytes + bytes <= budget) return;
      this.evict(e.loaded.name);
    }
  }

  private disposeEntry(entry: Entry): void {
    entry.loaded.model.dispose();
  }

  private modelJsonPath(name: string): string {
    return path.join(this.config.gpu.modelsDir, name, 'model.json');
  }
}

/**
 * A tfjs IOHandler reading model.json and its weight shards from disk (tfjs-node's file:// handler
 * is not available without the native addon). Shard paths must stay inside the model's folder.
 */
async function fileHandler(
  file: string,
): Promise<{ handler: TfCore.io.IOHandler; kind: ModelKind; bytes: number }> {
  const dir = path.dirname(file);
  const json = JSON.parse(await readFile(file, 'utf8')) as TfCore.io.ModelJSON;
  const kind = modelKind(json, file);
  const manifest = json.weightsManifest ?? [];
  const shards: Buffer[] = [];
  for (const group of manifest) {
    for (const p of group.paths) {
      const shard = path.resolve(dir, p);
      if (path.relative(dir, shard).startsWith('..') || path.isAbsolute(p)) {
        throw new ModelRegistryError(`${file}: weight path ${p} leaves the model folder`);
      }
      shards.push(await readFile(shard));
    }
  }
  const weights = Buffer.concat(shards);
  const weightData = weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.length);
  const artifacts = await io.getModelArtifactsForJSON(json, async (m) => [
    m.flatMap((g) => g.weights),
    weightData,
  ]);
  return { handler: { load: async () => artifacts }, kind, bytes: weights.length };
}

function modelKind(json: TfCore.io.ModelJSON, file: string): ModelKind {
  if (json.format === 'graph-model') return 'graph';
  if (json.format === 'layers-model') return 'layers';
  const topology = json.modelTopology as Record<string, unknown> | undefined;
  if (topology && 'node' in topology) return 'graph';
  if (topology && ('class_name' in topology || 'model_config' in topology)) return 'layers';
  throw new ModelRegistryError(`${file}: neither a tfjs graph model nor a layers model`);
}

/** One inference on zeros of each input's shape (unknown dimensions as 1); results disposed. */
async function warmUp(tf: typeof TfCore, loaded: LoadedModel): Promise<void> {
  const shapeOf = (shape: readonly (number | null | undefined)[] | undefined) =>
    (shape ?? [1]).map((d) => (d === null || d === undefined || d < 0 ? 1 : d));
  if (loaded.kind === 'layers') {
    const inputs = loaded.model.inputs.map((t) => tf.zeros(shapeOf(t.shape), t.dtype));
    try {
      const out = loaded.model.predict(inputs.length === 1 ? inputs[0] : inputs);
      const outputs = Array.isArray(out) ? out : [out];
      await Promise.all(outputs.map((t) => t.data()));
      tf.dispose(outputs);
    } finally {
      tf.dispose(inputs);
    }
    return;
  }
  const named: Record<string, TfCore.Tensor> = {};
  for (const info of loaded.model.inputs) {
    named[info.name] = tf.zeros(shapeOf(info.shape), info.dtype);
  }
  try {
    let out: TfCore.Tensor | TfCore.Tensor[];
    try {
      out = loaded.model.execute(named);
    } catch (err) {
      // Graphs with control flow or dynamic shapes only run asynchronously.
      if (!/executeAsync/.test(String(err))) throw err;
      out = await loaded.model.executeAsync(named);
    }
    const outputs = Array.isArray(out) ? out : [out];
    await Promise.all(outputs.map((t) => t.data()));
    tf.dispose(outputs);
  } finally {
    tf.dispose(Object.values(named));
  }
}
