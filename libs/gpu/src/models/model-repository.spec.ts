import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { AppConfig } from '@app/config';
import type { ListedObject, ObjectStream, StorageDriver } from '@app/storage';
import { layers, sequential } from '@tensorflow/tfjs-layers';
import { defaultModelSources } from '../gpu.module';
import { GpuService } from '../gpu.service';
import { DirectoryModelSource } from './directory-model-source';
import { compareVersions, ModelConfigError, parseModelConfig } from './model-config';
import { ModelNotFoundError, ModelRepository, type ModelEvent } from './model-repository';
import type { ModelSource } from './model-source';
import {
  ESRGAN_SCALES,
  esrganModelName,
  HUMAN_FACE_BODY_MODEL,
  NSFW_MODEL,
} from './package-models';
import { StorageModelSource } from './storage-model-source';

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function appConfig(over: Partial<AppConfig['gpu']> = {}): AppConfig {
  return {
    gpu: {
      backend: 'wasm',
      modelsDir: '/nonexistent-models-dir',
      modelCacheBytes: 2 ** 31,
      modelsFromStorage: true,
      modelCacheDir: '/nonexistent-cache',
      modelPreload: { declared: true, names: [] },
      ...over,
    },
  } as AppConfig;
}

/** A dense model of `units` outputs saved as model.json + weights.bin in `dir`. */
async function writeModel(dir: string, units: number, configOver: Record<string, unknown> = {}) {
  const model = sequential({ layers: [layers.dense({ units, inputShape: [8] })] });
  let files: { json: string; weights: Buffer } | undefined;
  await model.save({
    save: async (a) => {
      files = {
        weights: Buffer.from(a.weightData as ArrayBuffer),
        json: JSON.stringify({
          format: 'layers-model',
          modelTopology: a.modelTopology,
          weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs }],
        }),
      };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  model.dispose();
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'model.json'), files!.json);
  writeFileSync(path.join(dir, 'weights.bin'), files!.weights);
  const [name, version] = dir.split(path.sep).slice(-2);
  writeFileSync(
    path.join(dir, 'config.json'),
    JSON.stringify({
      name,
      version,
      format: 'tfjs-layers',
      inputs: [],
      outputs: [],
      ...configOver,
    }),
  );
  return files!;
}

describe('parseModelConfig', () => {
  const base = { name: 'm', version: '1', format: 'tfjs-graph', inputs: [], outputs: [] };
  it.each([
    [{ ...base, name: '../x' }, /"name"/],
    [{ ...base, version: '' }, /"version"/],
    [{ ...base, format: 'onnx' }, /"format" must be one of tfjs-layers, tfjs-graph, human/],
    [{ ...base, inputs: [{ shape: [1] }] }, /"inputs\[0\]\.name"/],
    [{ ...base, files: [{ path: '../etc/passwd', bytes: 1 }] }, /"files\[0\]\.path"/],
    [{ ...base, files: [{ path: 'a.bin', bytes: 1, sha256: 'xyz' }] }, /sha256/],
    [{ ...base, warmup: { shape: [1, 0] } }, /"warmup\.shape"/],
    [{ ...base, model_file: '/abs.json' }, /"model_file"/],
  ])('refuses %j naming the field', (raw, message) => {
    expect(() => parseModelConfig(raw, 'config.json')).toThrow(ModelConfigError);
    expect(() => parseModelConfig(raw, 'config.json')).toThrow(message);
  });

  it('orders versions newest first, numeric segments as numbers', () => {
    expect(['1', '10', '9', '1.10.0', '1.9.2', '2'].sort(compareVersions)).toEqual([
      '10',
      '9',
      '2',
      '1.10.0',
      '1.9.2',
      '1',
    ]);
  });
});

describe('ModelRepository', () => {
  let gpu: GpuService;
  let root: string;
  beforeAll(async () => {
    gpu = new GpuService(appConfig());
    await gpu.init();
  });
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'model-repo-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('takes the newest version, a pinned one on request, and the first source of a duplicate', async () => {
    await writeModel(path.join(root, 'a', 'm', '1'), 2);
    await writeModel(path.join(root, 'a', 'm', '10'), 3);
    await writeModel(path.join(root, 'b', 'm', '10'), 5);
    await writeModel(path.join(root, 'b', 'm', '2'), 7);
    const sources: ModelSource[] = [
      new DirectoryModelSource('models_dir', path.join(root, 'a')),
      new DirectoryModelSource('bundled', path.join(root, 'b')),
    ];
    const repo = new ModelRepository(appConfig(), gpu, sources);
    const catalog = await repo.catalog();
    expect(catalog).toEqual([
      {
        name: 'm',
        versions: [
          expect.objectContaining({ version: '10', source: 'models_dir' }),
          expect.objectContaining({ version: '2', source: 'bundled' }),
          expect.objectContaining({ version: '1', source: 'models_dir' }),
        ],
      },
    ]);
    const units = (v?: string) =>
      repo.use('m', (m) => m.layers().outputs[0].shape[1], v ? { version: v } : {});
    expect(await units()).toBe(3);
    expect(await units('2')).toBe(7);
    await expect(repo.use('m', () => 0, { version: '3' })).rejects.toThrow(
      'model m has no version 3 (versions: 10, 2, 1)',
    );
    await expect(repo.use('nope', () => 0)).rejects.toThrow(ModelNotFoundError);
    repo.onModuleDestroy();
  });

  it('evicts the least recently used model past MODEL_CACHE_BYTES, never one in use', async () => {
    await writeModel(path.join(root, 'x', '1'), 64); // 8×64+64 floats = 2,304 bytes
    await writeModel(path.join(root, 'y', '1'), 64);
    const repo = new ModelRepository(appConfig({ modelCacheBytes: 4000 }), gpu, [
      new DirectoryModelSource('models_dir', root),
    ]);
    const events: ModelEvent[] = [];
    repo.onEvent((e) => events.push(e));
    const before = gpu.tensorCount();
    await repo.use('x', async (x) => {
      // Loading y needs x's room, but x is pinned: it leaves the cache and is disposed at release.
      await repo.use('y', () => undefined);
      expect(repo.states().map((s) => s.name)).toEqual(['y']);
      const out = await x.infer(() => {
        const t = gpu.tf.tidy(() => x.layers().predict(gpu.tf.ones([1, 8])) as never) as {
          dataSync(): Float32Array;
          dispose(): void;
        };
        const length = t.dataSync().length;
        t.dispose();
        return length;
      });
      expect(out).toBe(64);
    });
    expect(
      events.filter((e) => e.type === 'load').map((e) => (e as { model: string }).model),
    ).toEqual(['x', 'y']);
    expect(events.some((e) => e.type === 'inference' && e.model === 'x')).toBe(true);
    repo.onModuleDestroy();
    expect(gpu.tensorCount()).toBe(before);
  });

  it('records a model whose weights do not load as failed, with the reason', async () => {
    await writeModel(path.join(root, 'broken', '1'), 4);
    writeFileSync(path.join(root, 'broken', '1', 'weights.bin'), Buffer.alloc(3));
    const repo = new ModelRepository(appConfig(), gpu, [
      new DirectoryModelSource('models_dir', root),
    ]);
    await expect(repo.preload(['broken'])).rejects.toThrow(/broken/);
    expect(repo.states()).toEqual([
      expect.objectContaining({ name: 'broken', state: 'failed', error: expect.any(String) }),
    ]);
  });

  it('refuses a weight path that leaves the model folder', async () => {
    const dir = path.join(root, 'evil', '1');
    await writeModel(dir, 4);
    const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
    json.weightsManifest[0].paths = ['../../../etc/passwd'];
    writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    const repo = new ModelRepository(appConfig(), gpu, [
      new DirectoryModelSource('models_dir', root),
    ]);
    await expect(repo.use('evil', () => 0)).rejects.toThrow('leaves the model folder');
  });

  describe('object storage source', () => {
    /** A bucket in memory, counting downloads. */
    function bucket(objects: Record<string, Buffer>) {
      const gets: string[] = [];
      const driver = {
        name: 'memory',
        async list(prefix: string): Promise<ListedObject[]> {
          return Object.keys(objects)
            .filter((k) => k.startsWith(prefix))
            .sort()
            .map((key) => ({ key, size: objects[key].length }));
        },
        async get(key: string): Promise<ObjectStream | null> {
          gets.push(key);
          const body = objects[key];
          return body
            ? { stream: Readable.from([body]), size: body.length, contentType: '' }
            : null;
        },
      } as unknown as StorageDriver;
      return { driver, gets };
    }

    async function storedVersion(name: string, version: string, digestOf?: (w: Buffer) => string) {
      const dir = path.join(root, 'src', name, version);
      const { json, weights } = await writeModel(dir, 4);
      const config = {
        name,
        version,
        format: 'tfjs-layers',
        inputs: [],
        outputs: [],
        files: [
          { path: 'model.json', bytes: Buffer.byteLength(json), sha256: sha256(json) },
          { path: 'weights.bin', bytes: weights.length, sha256: (digestOf ?? sha256)(weights) },
        ],
      };
      return {
        [`models/${name}/${version}/config.json`]: Buffer.from(JSON.stringify(config)),
        [`models/${name}/${version}/model.json`]: Buffer.from(json),
        [`models/${name}/${version}/weights.bin`]: weights,
      };
    }

    it('downloads a version once into the cache and loads it from there', async () => {
      const { driver, gets } = bucket(await storedVersion('s', '3'));
      const cache = path.join(root, 'cache');
      const repo = () =>
        new ModelRepository(appConfig(), gpu, [new StorageModelSource(driver, cache)]);
      const first = repo();
      expect(await first.use('s', (m) => `${m.source} ${m.version}`)).toBe('object_storage 3');
      expect(gets.filter((k) => k.endsWith('weights.bin'))).toHaveLength(1);
      first.onModuleDestroy();
      // A second process with the same cache reads config.json only.
      const second = repo();
      await second.use('s', () => undefined);
      expect(gets.filter((k) => k.endsWith('weights.bin'))).toHaveLength(1);
      second.onModuleDestroy();
    });

    it('refuses a file whose digest is not the one config.json gives, and keeps nothing of it', async () => {
      const { driver } = bucket(await storedVersion('t', '1', () => 'f'.repeat(64)));
      const cache = path.join(root, 'cache');
      const repo = new ModelRepository(appConfig(), gpu, [new StorageModelSource(driver, cache)]);
      await expect(repo.use('t', () => 0)).rejects.toThrow(
        /models\/t\/1\/weights\.bin: SHA-256 [0-9a-f]{64}, config\.json says f{64}/,
      );
      expect(readdirSync(path.join(cache, 't', '1'))).toEqual(['model.json']);
    });

    it('skips a version whose config.json sizes do not match the bucket', async () => {
      const objects = await storedVersion('u', '1');
      objects['models/u/1/weights.bin'] = Buffer.concat([
        objects['models/u/1/weights.bin'],
        Buffer.alloc(4),
      ]);
      const { driver } = bucket(objects);
      const repo = new ModelRepository(appConfig(), gpu, [
        new StorageModelSource(driver, path.join(root, 'cache')),
      ]);
      expect(await repo.catalog()).toEqual([]);
    });
  });

  it('loads every trained network shipped with the service, with its real weights, on this backend', async () => {
    const repo = new ModelRepository(appConfig(), gpu, defaultModelSources(appConfig()));
    const names = [
      ...(['slim', 'medium', 'thick'] as const).flatMap((s) =>
        ESRGAN_SCALES.map((x) => esrganModelName(s, x)),
      ),
      NSFW_MODEL,
      HUMAN_FACE_BODY_MODEL,
      'person-segmentation-selfie',
      'person-segmentation-rvm',
    ];
    expect((await repo.catalog()).map((c) => c.name).sort()).toEqual([...names].sort());
    await repo.preload(names);
    const states = repo.states();
    for (const name of names) {
      expect(states.find((s) => s.name === name)).toMatchObject({
        state: 'ready',
        backend: gpu.backendName,
        bytes: expect.any(Number),
      });
    }
    // Weights are real, not a stub: ESRGAN thick ×4 alone has 29 MB of them.
    expect(states.find((s) => s.name === 'esrgan-thick-x4')!.bytes).toBeGreaterThan(25e6);
    // A 2× slim pass doubles the size.
    const shape = await repo.use(esrganModelName('slim', 2), (m) =>
      gpu.tf.tidy(
        () => (m.layers().predict(gpu.tf.fill([1, 12, 10, 3], 128)) as { shape: number[] }).shape,
      ),
    );
    expect(shape).toEqual([1, 24, 20, 3]);
    repo.onModuleDestroy();
  }, 180_000);
});
