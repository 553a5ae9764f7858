import { Inject, Injectable, Logger, Optional, type OnModuleDestroy } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { GraphModel } from '@tensorflow/tfjs-converter';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { GpuService } from '../gpu.service';
import { compareVersions, type ModelConfig, type ModelFormat } from './model-config';
import {
  disposeHandle,
  loadModel,
  warmUp,
  type HumanInstance,
  type ModelHandle,
} from './model-loaders';
import {
  MODEL_SOURCES,
  type ModelSource,
  type ModelSourceName,
  type ModelVersionEntry,
} from './model-source';

/** A model version in memory, warmed up: what `ModelRepository.use` hands a processor. */
export interface LoadedModel {
  readonly name: string;
  readonly version: string;
  readonly config: ModelConfig;
  readonly source: ModelSourceName;
  readonly handle: ModelHandle;
  readonly bytes: number;
  /**
   * Times one inference (what `model_inference_seconds{model}` observes): wrap each model call,
   * including reading its output, so that the figure is the model's and not the task's.
   */
  infer<T>(fn: () => Promise<T> | T): Promise<T>;
  /** The layers model; throws when the version is of another format. */
  layers(): LayersModel;
  graph(): GraphModel;
  human(): HumanInstance;
}

/** One version in the catalog, as listings show it (snake_case: reported as is). */
export interface ModelVersionInfo {
  version: string;
  format: ModelFormat;
  source: ModelSourceName;
  location: string;
  description?: string;
  license?: string;
  origin?: string;
  inputs: ModelConfig['inputs'];
  outputs: ModelConfig['outputs'];
  preferred_batch_sizes?: number[];
  memory_bytes?: number;
}

export interface ModelCatalogEntry {
  name: string;
  /** Newest first; the first is what `use(name)` loads. */
  versions: ModelVersionInfo[];
}

/** A model this process holds or is loading (snake_case: reported in heartbeats and health). */
export interface ModelState {
  name: string;
  version?: string;
  state: 'loading' | 'ready' | 'failed';
  backend?: string;
  bytes?: number;
  load_ms?: number;
  warmup_ms?: number;
  loaded_at?: string;
  inferences?: number;
  error?: string;
}

export type ModelEvent =
  | {
      type: 'load';
      model: string;
      version: string;
      seconds: number;
      warmupSeconds: number;
      backend: string;
    }
  | { type: 'inference'; model: string; seconds: number };

export class ModelNotFoundError extends Error {
  override readonly name = 'ModelNotFoundError';
}

export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
}

interface Entry {
  loaded: LoadedModel;
  state: ModelState;
  lastUsed: number;
  pins: number;
  evicted: boolean;
}

/**
 * The models of this process, as Triton's model repository: versions by name from every
 * ModelSource (MODELS_DIR, object storage, the models this repository ships, npm packages), one
 * config.json each. Loads a version once on the running backend, warms it up with one inference,
 * and keeps loaded models in an LRU cache bounded by MODEL_CACHE_BYTES of weights; a model in use
 * is never disposed under its user. Processors get models only through `use`: none reads files.
 */
@Injectable()
export class ModelRepository implements OnModuleDestroy {
  private readonly logger = new Logger(ModelRepository.name);
  private catalogCache?: Promise<Map<string, ModelVersionEntry[]>>;
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  /** Loads under way or failed, by name (a ready model is in `entries`). */
  private readonly pending = new Map<string, ModelState>();
  private readonly listeners = new Set<(e: ModelEvent) => void>();
  private clock = 0;

  constructor(
    private readonly config: AppConfig,
    private readonly gpu: GpuService,
    @Optional() @Inject(MODEL_SOURCES) private readonly sources: readonly ModelSource[] = [],
  ) {}

  /** Subscribes to loads and inferences (the worker's metrics do); returns the unsubscribe. */
  onEvent(listener: (e: ModelEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every model the sources offer, by name, newest version first. */
  async catalog(): Promise<ModelCatalogEntry[]> {
    const byName = await this.versions();
    return [...byName.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, versions]) => ({ name, versions: versions.map(describeVersion) }));
  }

  /** Lists the sources again (a model copied into MODELS_DIR or the bucket since boot). */
  refresh(): Promise<ModelCatalogEntry[]> {
    this.catalogCache = undefined;
    return this.catalog();
  }

  /** Whether some source offers the model (any version, or the one given). */
  async has(name: string, version?: string): Promise<boolean> {
    const versions = (await this.versions()).get(name) ?? [];
    return versions.some((v) => version === undefined || v.config.version === version);
  }

  /**
   * Runs `fn` with the model loaded, warmed up and pinned (eviction waits until `fn` ends). The
   * newest version unless `version` names one. Two callers at once share one load.
   */
  async use<T>(
    name: string,
    fn: (model: LoadedModel) => Promise<T> | T,
    opts: { version?: string } = {},
  ): Promise<T> {
    const entry = await this.entry(name, opts.version);
    entry.pins += 1;
    try {
      return await fn(entry.loaded);
    } finally {
      entry.pins -= 1;
      if (entry.evicted && entry.pins === 0) disposeHandle(entry.loaded.handle);
    }
  }

  /**
   * Loads and warms the models up one after another (so that their load times do not stretch each
   * other); a failure is recorded in `states()` and rethrown after the rest have loaded.
   */
  async preload(names: readonly string[]): Promise<void> {
    const unique = [...new Set(names)];
    for (const name of unique) {
      if (!this.entries.has(this.key(name)) && !this.pending.has(name)) {
        this.pending.set(name, { name, state: 'loading' });
      }
    }
    const failures: string[] = [];
    for (const name of unique) {
      try {
        await this.entry(name);
      } catch (err) {
        failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (failures.length > 0)
      throw new ModelLoadError(`models failed to load: ${failures.join('; ')}`);
  }

  /** Models loaded, loading or failed, most recently used first. */
  states(): ModelState[] {
    const ready = [...this.entries.values()]
      .sort((a, b) => b.lastUsed - a.lastUsed)
      .map((e) => ({ ...e.state }));
    return [...ready, ...[...this.pending.values()].map((s) => ({ ...s }))];
  }

  /** Bytes of weights held by loaded models. */
  get usedBytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.loaded.bytes;
    return sum;
  }

  /** Drops a model (disposed now, or when its last user releases it). */
  evict(name: string): boolean {
    const key = [...this.entries.keys()].find((k) => k === name || k.startsWith(`${name}@`));
    if (!key) return false;
    const entry = this.entries.get(key)!;
    this.entries.delete(key);
    entry.evicted = true;
    if (entry.pins === 0) disposeHandle(entry.loaded.handle);
    this.logger.log(`evicted model ${key} (${entry.loaded.bytes} bytes)`);
    return true;
  }

  onModuleDestroy(): void {
    for (const key of [...this.entries.keys()]) this.evict(key);
  }

  private versions(): Promise<Map<string, ModelVersionEntry[]>> {
    this.catalogCache ??= this.listSources().catch((err: unknown) => {
      this.catalogCache = undefined;
      throw err;
    });
    return this.catalogCache;
  }

  private async listSources(): Promise<Map<string, ModelVersionEntry[]>> {
    const byName = new Map<string, ModelVersionEntry[]>();
    // Sources come highest precedence first: a version already seen is not replaced.
    for (const source of this.sources) {
      let list: ModelVersionEntry[];
      try {
        list = await source.list();
      } catch (err) {
        this.logger.warn(`model source ${source.name} could not be listed: ${String(err)}`);
        continue;
      }
      for (const v of list) {
        const versions = byName.get(v.config.name) ?? [];
        if (!versions.some((x) => x.config.version === v.config.version)) versions.push(v);
        byName.set(v.config.name, versions);
      }
    }
    for (const versions of byName.values())
      versions.sort((a, b) => compareVersions(a.config.version, b.config.version));
    return byName;
  }

  private key(name: string, version?: string): string {
    if (version) return `${name}@${version}`;
    return [...this.entries.keys()].find((k) => k.startsWith(`${name}@`)) ?? `${name}@`;
  }

  private async entry(name: string, version?: string): Promise<Entry> {
    const versions = (await this.versions()).get(name);
    const chosen = version ? versions?.find((v) => v.config.version === version) : versions?.[0];
    if (!chosen) {
      const known = versions?.map((v) => v.config.version).join(', ');
      throw new ModelNotFoundError(
        version && known
          ? `model ${name} has no version ${version} (versions: ${known})`
          : `no model ${name} in the model repository (sources: ${this.sources.map((s) => s.name).join(', ') || 'none'})`,
      );
    }
    const key = `${name}@${chosen.config.version}`;
    const cached = this.entries.get(key);
    if (cached) {
      cached.lastUsed = ++this.clock;
      return cached;
    }
    let pending = this.loading.get(key);
    if (!pending) {
      pending = this.load(chosen).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
    }
    const entry = await pending;
    entry.lastUsed = ++this.clock;
    return entry;
  }

  private async load(chosen: ModelVersionEntry): Promise<Entry> {
    const { name, version } = chosen.config;
    const key = `${name}@${version}`;
    this.pending.set(name, { name, version, state: 'loading' });
    try {
      await this.gpu.init();
      const backend = this.gpu.backendName;
      const started = performance.now();
      const { handle, bytes } = await loadModel(chosen, this.gpu.tf, backend);
      const budget = this.config.gpu.modelCacheBytes;
      if (bytes > budget) {
        disposeHandle(handle);
        throw new ModelLoadError(
          `model ${key} has ${bytes} bytes of weights, more than MODEL_CACHE_BYTES (${budget})`,
        );
      }
      const loadedAt = performance.now();
      try {
        await warmUp(this.gpu.tf, chosen.config, handle);
      } catch (err) {
        disposeHandle(handle);
        throw new ModelLoadError(`model ${key} failed its warm-up inference: ${String(err)}`, {
          cause: err,
        });
      }
      const warmed = performance.now();
      this.makeRoom(bytes, budget);
      const state: ModelState = {
        name,
        version,
        state: 'ready',
        backend,
        bytes,
        load_ms: Math.round(loadedAt - started),
        warmup_ms: Math.round(warmed - loadedAt),
        loaded_at: new Date().toISOString(),
        inferences: 0,
      };
      const entry: Entry = {
        loaded: this.loadedModel(chosen, handle, bytes, state),
        state,
        lastUsed: ++this.clock,
        pins: 0,
        evicted: false,
      };
      this.entries.set(key, entry);
      this.pending.delete(name);
      this.emit({
        type: 'load',
        model: name,
        version,
        seconds: (loadedAt - started) / 1000,
        warmupSeconds: (warmed - loadedAt) / 1000,
        backend,
      });
      this.logger.log(
        `loaded ${chosen.config.format} model ${key} from ${chosen.source} (${bytes} bytes of weights) ` +
          `in ${state.load_ms} ms, warm-up ${state.warmup_ms} ms on ${backend}; ` +
          `cache ${this.usedBytes}/${budget} bytes`,
      );
      return entry;
    } catch (err) {
      this.pending.set(name, {
        name,
        version,
        state: 'failed',
        error: err instanceof Error ? err.message : String(err),
      });
      throw err;
    }
  }

  private loadedModel(
    entry: ModelVersionEntry,
    handle: ModelHandle,
    bytes: number,
    state: ModelState,
  ): LoadedModel {
    const { name, version } = entry.config;
    const wrongFormat = (wanted: string) =>
      new ModelLoadError(`model ${name}@${version} is ${handle.format}, not ${wanted}`);
    return {
      name,
      version,
      config: entry.config,
      source: entry.source,
      handle,
      bytes,
      infer: async <T>(fn: () => Promise<T> | T): Promise<T> => {
        const started = performance.now();
        try {
          return await fn();
        } finally {
          state.inferences = (state.inferences ?? 0) + 1;
          this.emit({
            type: 'inference',
            model: name,
            seconds: (performance.now() - started) / 1000,
          });
        }
      },
      layers: () => {
        if (handle.format !== 'tfjs-layers') throw wrongFormat('tfjs-layers');
        return handle.model;
      },
      graph: () => {
        if (handle.format !== 'tfjs-graph') throw wrongFormat('tfjs-graph');
        return handle.model;
      },
      human: () => {
        if (handle.format !== 'human') throw wrongFormat('human');
        return handle.human;
      },
    };
  }

  /** Evicts least recently used models until `bytes` more fit in `budget`. */
  private makeRoom(bytes: number, budget: number): void {
    // Human pipelines stay resident: Human keeps each module's network in a module global, so
    // one cannot be freed and loaded again (a new instance would find the disposed one). They
    // still count against the budget.
    const lru = [...this.entries.entries()]
      .filter(([, e]) => e.loaded.handle.format !== 'human')
      .sort(([, a], [, b]) => a.lastUsed - b.lastUsed);
    for (const [key] of lru) {
      if (this.usedBytes + bytes <= budget) return;
      this.evict(key);
    }
  }

  private emit(event: ModelEvent): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.logger.warn(`model event listener failed: ${String(err)}`);
      }
    }
  }
}

function describeVersion(v: ModelVersionEntry): ModelVersionInfo {
  const c = v.config;
  return {
    version: c.version,
    format: c.format,
    source: v.source,
    location: v.location,
    description: c.description,
    license: c.license,
    origin: c.origin,
    inputs: c.inputs,
    outputs: c.outputs,
    preferred_batch_sizes: c.preferred_batch_sizes,
    memory_bytes: c.memory_bytes,
  };
}
