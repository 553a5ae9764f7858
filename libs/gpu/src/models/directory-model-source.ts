import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import {
  MODEL_SEGMENT,
  ModelConfigError,
  parseModelConfig,
  type ModelConfig,
  type ModelFormat,
} from './model-config';
import type { ModelSource, ModelSourceName, ModelVersionEntry } from './model-source';

/**
 * Models in a folder laid out as Triton's: `<dir>/<name>/<version>/config.json` next to the
 * version's files. A version folder with a tfjs `model.json` and no config.json gets one
 * inferred (format from model.json, unknown input shapes). Broken entries are logged and skipped:
 * one bad folder does not hide the others.
 */
export class DirectoryModelSource implements ModelSource {
  private readonly logger = new Logger(DirectoryModelSource.name);

  constructor(
    readonly name: ModelSourceName,
    private readonly dir: string,
  ) {}

  async list(): Promise<ModelVersionEntry[]> {
    if (!existsSync(this.dir)) return [];
    const out: ModelVersionEntry[] = [];
    for (const name of await subfolders(this.dir)) {
      if (!MODEL_SEGMENT.test(name)) continue;
      for (const version of await subfolders(path.join(this.dir, name))) {
        if (!MODEL_SEGMENT.test(version)) continue;
        const dir = path.join(this.dir, name, version);
        try {
          const config = await readConfig(dir, name, version);
          if (!config) continue;
          out.push({ config, source: this.name, location: dir, localDir: async () => dir });
        } catch (err) {
          this.logger.warn(`skipping model ${name}/${version} in ${this.dir}: ${String(err)}`);
        }
      }
    }
    return out;
  }
}

async function subfolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries.filter((e) => e.isDirectory()).map((e) => e.name);
}

/** The version's config.json (its name and version must match the folders), or one inferred. */
export async function readConfig(
  dir: string,
  name: string,
  version: string,
): Promise<ModelConfig | undefined> {
  const file = path.join(dir, 'config.json');
  if (existsSync(file)) {
    const config = parseModelConfig(JSON.parse(await readFile(file, 'utf8')), file);
    if (config.name !== name || config.version !== version) {
      throw new ModelConfigError(
        `${file} says ${config.name}/${config.version}, its folder ${name}/${version}`,
      );
    }
    return config;
  }
  const modelJson = path.join(dir, 'model.json');
  if (!existsSync(modelJson)) return undefined;
  const json = JSON.parse(await readFile(modelJson, 'utf8')) as {
    format?: string;
    modelTopology?: Record<string, unknown>;
  };
  return { name, version, format: tfjsFormat(json, modelJson), inputs: [], outputs: [] };
}

export function tfjsFormat(
  json: { format?: string; modelTopology?: Record<string, unknown> },
  where: string,
): ModelFormat {
  if (json.format === 'graph-model') return 'tfjs-graph';
  if (json.format === 'layers-model') return 'tfjs-layers';
  const t = json.modelTopology;
  if (t && 'node' in t) return 'tfjs-graph';
  if (t && ('class_name' in t || 'model_config' in t)) return 'tfjs-layers';
  throw new ModelConfigError(`${where}: neither a tfjs graph model nor a layers model`);
}
