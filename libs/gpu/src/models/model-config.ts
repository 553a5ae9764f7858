/**
 * A model's `config.json`, as in Triton's model repository: what the model is and how to feed it.
 * Every source (npm packages, MODELS_DIR, object storage, the models this repository ships) gives
 * one per version; for packages that ship only tfjs files the catalog writes it.
 */

/**
 * How the repository loads a version:
 * - `tfjs-layers` / `tfjs-graph`: a tfjs model.json with its weight shards;
 * - `human`: a @vladmandic/human pipeline; the folder holds the Human models it enables and
 *   `human` holds its config (modules to enable, their model file names).
 */
export const MODEL_FORMATS = ['tfjs-layers', 'tfjs-graph', 'human'] as const;
export type ModelFormat = (typeof MODEL_FORMATS)[number];

export interface ModelTensorSpec {
  name: string;
  /** NHWC etc.; null for a dimension of any size. */
  shape: (number | null)[];
  dtype: 'float32' | 'int32';
  /** Value range the model expects (inputs) or produces (outputs), e.g. [0, 255] or [0, 1]. */
  range?: [number, number];
}

export interface ModelWarmupInput {
  /** [] for a scalar. */
  shape: number[];
  value?: number;
}

export interface ModelFileSpec {
  /** Path inside the version's folder. */
  path: string;
  bytes: number;
  /** Hex SHA-256; checked when the file comes from object storage. */
  sha256?: string;
}

export interface ModelConfig {
  name: string;
  version: string;
  format: ModelFormat;
  description?: string;
  license?: string;
  /** Where the weights come from (a paper, a project, an npm package). */
  origin?: string;
  /** The model.json of tfjs formats, relative to the version folder (default `model.json`). */
  model_file?: string;
  inputs: ModelTensorSpec[];
  outputs: ModelTensorSpec[];
  /** Batch sizes the model runs best at (a batcher groups requests to these). */
  preferred_batch_sizes?: number[];
  /** Backend memory one inference of the warm-up input needs beyond the weights, bytes. */
  memory_bytes?: number;
  /**
   * The warm-up inference: `shape` for every input (unknown dimensions of `inputs` otherwise
   * become 1), or per input by name (`:0` suffixes ignored) a shape and the value it is filled
   * with (default 0) — a graph with several inputs (recurrent states, a scalar ratio) needs both.
   */
  warmup?: { shape?: number[]; inputs?: Record<string, ModelWarmupInput> };
  /** Custom layers of a layers model, by class name; the repository registers known ones. */
  custom_layers?: string[];
  /** Files of the version; object storage downloads are checked against size and digest. */
  files?: ModelFileSpec[];
  /** For the `human` format: the partial Human config (which modules, which model files). */
  human?: Record<string, unknown>;
}

export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
}

/** One path segment of safe characters: names and versions are folder names. */
export const MODEL_SEGMENT = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** Checks a parsed config.json; `where` names it in errors. Returns it typed. */
export function parseModelConfig(raw: unknown, where: string): ModelConfig {
  const fail = (why: string): never => {
    throw new ModelConfigError(`${where}: ${why}`);
  };
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail('not a JSON object');
  const c = raw as Record<string, unknown>;
  for (const key of ['name', 'version'] as const) {
    if (typeof c[key] !== 'string' || !MODEL_SEGMENT.test(c[key]))
      fail(`"${key}" must be a string of letters, digits, '.', '_' or '-'`);
  }
  if (!MODEL_FORMATS.includes(c.format as ModelFormat))
    fail(`"format" must be one of ${MODEL_FORMATS.join(', ')}`);
  for (const key of ['inputs', 'outputs'] as const) {
    if (c[key] === undefined) c[key] = [];
    if (!Array.isArray(c[key])) fail(`"${key}" must be an array`);
    (c[key] as unknown[]).forEach((t, i) => {
      const spec = t as Record<string, unknown> | null;
      if (!spec || typeof spec.name !== 'string') fail(`"${key}[${i}].name" must be a string`);
      if (!Array.isArray(spec!.shape)) fail(`"${key}[${i}].shape" must be an array`);
      spec!.dtype ??= 'float32';
    });
  }
  if (c.files !== undefined) {
    if (!Array.isArray(c.files)) fail('"files" must be an array');
    (c.files as unknown[]).forEach((f, i) => {
      const file = f as Record<string, unknown> | null;
      if (!file || typeof file.path !== 'string' || !isSafeRelative(file.path))
        fail(`"files[${i}].path" must be a relative path inside the version folder`);
      if (typeof file!.bytes !== 'number' || file!.bytes < 0)
        fail(`"files[${i}].bytes" must be a byte count`);
      if (
        file!.sha256 !== undefined &&
        (typeof file!.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(file!.sha256))
      )
        fail(`"files[${i}].sha256" must be 64 hex digits`);
    });
  }
  if (
    c.model_file !== undefined &&
    (typeof c.model_file !== 'string' || !isSafeRelative(c.model_file))
  )
    fail('"model_file" must be a relative path inside the version folder');
  if (c.warmup !== undefined) {
    const w = c.warmup as { shape?: unknown; inputs?: unknown };
    const isShape = (s: unknown) =>
      Array.isArray(s) && s.every((d) => Number.isInteger(d) && (d as number) > 0);
    if (w.shape === undefined && w.inputs === undefined)
      fail('"warmup" must have "shape" or "inputs"');
    if (w.shape !== undefined && !isShape(w.shape))
      fail('"warmup.shape" must be an array of positive integers');
    if (w.inputs !== undefined) {
      if (!w.inputs || typeof w.inputs !== 'object' || Array.isArray(w.inputs))
        fail('"warmup.inputs" must be an object of input names');
      for (const [name, input] of Object.entries(w.inputs as Record<string, unknown>)) {
        const i = input as { shape?: unknown; value?: unknown } | null;
        if (!i || !isShape(i.shape))
          fail(`"warmup.inputs.${name}.shape" must be an array of positive integers`);
        if (i!.value !== undefined && (typeof i!.value !== 'number' || !Number.isFinite(i!.value)))
          fail(`"warmup.inputs.${name}.value" must be a number`);
      }
    }
  }
  return c as unknown as ModelConfig;
}

/** A relative path that stays inside its folder (no `..`, not absolute). */
export function isSafeRelative(p: string): boolean {
  if (p.length === 0 || p.startsWith('/') || p.includes('\\')) return false;
  return p.split('/').every((s) => s !== '..' && s !== '' && s !== '.');
}

/**
 * Orders versions newest first: numeric segments compare as numbers (`10` > `9`, `1.10` >
 * `1.9`), others as strings.
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/);
  const pb = b.split(/[.-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) return ny - nx;
    return y < x ? -1 : 1;
  }
  return 0;
}
