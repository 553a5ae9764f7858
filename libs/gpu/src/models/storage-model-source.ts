import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { Logger } from '@nestjs/common';
import type { StorageDriver } from '@app/storage';
import {
  MODEL_SEGMENT,
  ModelConfigError,
  parseModelConfig,
  type ModelConfig,
  type ModelFileSpec,
} from './model-config';
import type { ModelSource, ModelVersionEntry } from './model-source';

/** Largest config.json read from the bucket. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Versions under `models/<name>/<version>/` of the object storage (R2/S3 or the local driver's
 * folder), each with a config.json. A version is downloaded once, on first load, into
 * MODEL_CACHE_DIR/<name>/<version>/; every file is checked against the size the listing gives and
 * against config.json's `files` (size, and SHA-256 when given) before the version is used. A file
 * already in the cache with the right size (and digest) is not downloaded again.
 */
export class StorageModelSource implements ModelSource {
  readonly name = 'object_storage' as const;
  private readonly logger = new Logger(StorageModelSource.name);
  private readonly downloads = new Map<string, Promise<string>>();

  constructor(
    private readonly storage: StorageDriver,
    private readonly cacheDir: string,
  ) {}

  async list(): Promise<ModelVersionEntry[]> {
    const objects = await this.storage.list('models/');
    const versions = new Map<string, Map<string, number>>();
    for (const o of objects) {
      const parts = o.key.split('/');
      if (parts.length < 4) continue;
      const [, name, version] = parts;
      if (!MODEL_SEGMENT.test(name) || !MODEL_SEGMENT.test(version)) continue;
      const id = `${name}/${version}`;
      const files = versions.get(id) ?? new Map<string, number>();
      files.set(parts.slice(3).join('/'), o.size);
      versions.set(id, files);
    }
    const out: ModelVersionEntry[] = [];
    for (const [id, files] of versions) {
      if (!files.has('config.json')) continue;
      const [name, version] = id.split('/') as [string, string];
      try {
        const config = await this.readConfig(name, version, files.get('config.json')!);
        const wanted = this.filesOf(config, files);
        out.push({
          config,
          source: this.name,
          location: `${this.storage.name}:models/${id}/`,
          localDir: () => this.download(config, wanted),
        });
      } catch (err) {
        this.logger.warn(`skipping model ${id} in object storage: ${String(err)}`);
      }
    }
    return out;
  }

  private async readConfig(name: string, version: string, size: number): Promise<ModelConfig> {
    const key = `models/${name}/${version}/config.json`;
    if (size > MAX_CONFIG_BYTES) throw new ModelConfigError(`${key} is larger than 1 MiB`);
    const object = await this.storage.get(key);
    if (!object) throw new ModelConfigError(`${key} vanished while listing`);
    const chunks: Buffer[] = [];
    for await (const chunk of object.stream) chunks.push(chunk as Buffer);
    const config = parseModelConfig(JSON.parse(Buffer.concat(chunks).toString('utf8')), key);
    if (config.name !== name || config.version !== version) {
      throw new ModelConfigError(`${key} says ${config.name}/${config.version}`);
    }
    return config;
  }

  /**
   * The files to download: config.json's `files` when it lists them (each must be in the bucket
   * with that size), else every object of the version folder with its listed size.
   */
  private filesOf(config: ModelConfig, listed: Map<string, number>): ModelFileSpec[] {
    const files: ModelFileSpec[] = config.files ?? [
      ...[...listed.entries()].map(([p, bytes]) => ({ path: p, bytes })),
    ];
    for (const f of files) {
      const size = listed.get(f.path);
      if (size === undefined)
        throw new ModelConfigError(`config.json lists ${f.path}, which is not in the bucket`);
      if (size !== f.bytes)
        throw new ModelConfigError(
          `${f.path} has ${size} bytes in the bucket, config.json says ${f.bytes}`,
        );
    }
    const withConfig = files.some((f) => f.path === 'config.json');
    return withConfig
      ? files
      : [...files, { path: 'config.json', bytes: listed.get('config.json')! }];
  }

  private download(config: ModelConfig, files: ModelFileSpec[]): Promise<string> {
    const id = `${config.name}/${config.version}`;
    let pending = this.downloads.get(id);
    if (!pending) {
      pending = this.fetchAll(config, files).catch((err: unknown) => {
        this.downloads.delete(id);
        throw err;
      });
      this.downloads.set(id, pending);
    }
    return pending;
  }

  private async fetchAll(config: ModelConfig, files: ModelFileSpec[]): Promise<string> {
    const dir = path.join(this.cacheDir, config.name, config.version);
    await mkdir(dir, { recursive: true });
    const started = Date.now();
    let fetched = 0;
    let bytes = 0;
    for (const f of files) {
      const target = path.join(dir, f.path);
      if (await this.cached(target, f)) continue;
      await mkdir(path.dirname(target), { recursive: true });
      await this.fetchOne(`models/${config.name}/${config.version}/${f.path}`, target, f);
      fetched += 1;
      bytes += f.bytes;
    }
    if (fetched > 0) {
      this.logger.log(
        `downloaded model ${config.name}/${config.version}: ${fetched} file(s), ${bytes} bytes in ` +
          `${Date.now() - started} ms into ${dir}`,
      );
    }
    return dir;
  }

  private async cached(target: string, f: ModelFileSpec): Promise<boolean> {
    if (!existsSync(target)) return false;
    if ((await stat(target)).size !== f.bytes) return false;
    if (!f.sha256) return true;
    return (
      createHash('sha256')
        .update(await readFile(target))
        .digest('hex') === f.sha256
    );
  }

  /** Streams one object to `target` through a digest, then renames it into place. */
  private async fetchOne(key: string, target: string, f: ModelFileSpec): Promise<void> {
    const object = await this.storage.get(key);
    if (!object) throw new ModelConfigError(`${key} is not in the bucket`);
    const tmp = `${target}.${randomUUID()}.tmp`;
    const hash = createHash('sha256');
    let size = 0;
    const count = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        hash.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(object.stream, count, createWriteStream(tmp));
      if (size !== f.bytes)
        throw new ModelConfigError(`${key}: ${size} bytes, expected ${f.bytes}`);
      const digest = hash.digest('hex');
      if (f.sha256 && digest !== f.sha256)
        throw new ModelConfigError(`${key}: SHA-256 ${digest}, config.json says ${f.sha256}`);
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }
}
