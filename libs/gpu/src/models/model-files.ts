import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as TfCore from '@tensorflow/tfjs-core';
import { io } from '@tensorflow/tfjs-core';
import { isSafeRelative, ModelConfigError } from './model-config';

/** A tfjs model's model.json and its weights, ready for `loadLayersModel`/`loadGraphModel`. */
export interface TfjsArtifacts {
  json: TfCore.io.ModelJSON;
  /** The shards of `weightsManifest`, concatenated in manifest order. */
  weights: ArrayBuffer;
}

/** Reads `file` (a model.json) and its shards, which must lie in the same folder or below it. */
export async function readTfjsArtifacts(file: string): Promise<TfjsArtifacts> {
  const dir = path.dirname(file);
  const json = JSON.parse(await readFile(file, 'utf8')) as TfCore.io.ModelJSON;
  const shards: Buffer[] = [];
  for (const group of json.weightsManifest ?? []) {
    for (const p of group.paths) {
      if (!isSafeRelative(p))
        throw new ModelConfigError(`${file}: weight path ${p} leaves the model folder`);
      shards.push(await readFile(path.join(dir, p)));
    }
  }
  const all = Buffer.concat(shards);
  return { json, weights: toArrayBuffer(all) };
}

export function toArrayBuffer(buf: Buffer | Uint8Array): ArrayBuffer {
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

/** An IOHandler serving artifacts already in memory. */
export async function memoryHandler(artifacts: TfjsArtifacts): Promise<TfCore.io.IOHandler> {
  const loaded = await io.getModelArtifactsForJSON(artifacts.json, async (manifest) => [
    manifest.flatMap((g) => g.weights),
    artifacts.weights,
  ]);
  return { load: async () => loaded };
}

let routerRegistered = false;

/**
 * Lets `tf.loadGraphModel('file:///…/model.json')` (and loadLayersModel) read from disk: plain
 * tfjs has no file:// loader without the native addon. Libraries that load their own models by
 * URL (Human) go through it. Registered once per process.
 */
export function registerFileLoadRouter(): void {
  if (routerRegistered) return;
  routerRegistered = true;
  const route = (url: string | string[]): TfCore.io.IOHandler | null => {
    if (typeof url !== 'string' || !url.startsWith('file://')) return null;
    const file = fileURLToPath(url);
    return { load: async () => (await memoryHandler(await readTfjsArtifacts(file))).load!() };
  };
  io.registerLoadRouter(route as Parameters<typeof io.registerLoadRouter>[0]);
}
