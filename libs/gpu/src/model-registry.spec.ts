import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type * as TfCore from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { GpuService } from './gpu.service';
import { ModelRegistry, ModelRegistryError } from './model-registry';

const MIB = 1024 * 1024;
/** Dense 300→300: 90,300 float32 weights = 361,200 bytes; two fit in 1 MiB, three do not. */
const UNITS = 300;
const MODEL_BYTES = (UNITS * UNITS + UNITS) * 4;

describe('ModelRegistry', () => {
  let dir: string;
  let gpu: GpuService;
  let tf: typeof TfCore;

  const registry = (budget = 64 * MIB) =>
    new ModelRegistry(
      AppConfig.fromEnv({ API_KEYS: 'k', MODELS_DIR: dir, MODEL_CACHE_BYTES: String(budget) }),
      gpu,
    );

  /** Builds a small LayersModel and saves it with our own IO handler as model.json + weights.bin. */
  async function saveLayersModel(name: string, seed: number): Promise<TfCore.Tensor> {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({
          units: UNITS,
          inputShape: [UNITS],
          activation: 'tanh',
          kernelInitializer: tfl.initializers.randomNormal({ seed }),
          biasInitializer: tfl.initializers.randomUniform({ seed }),
        }),
      ],
    });
    const folder = path.join(dir, name);
    await mkdir(folder, { recursive: true });
    await model.save({
      save: async (artifacts) => {
        const weights = Buffer.from(artifacts.weightData as ArrayBuffer);
        await writeFile(path.join(folder, 'weights.bin'), weights);
        await writeFile(
          path.join(folder, 'model.json'),
          JSON.stringify({
            format: 'layers-model',
            modelTopology: artifacts.modelTopology,
            weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
          }),
        );
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      },
    });
    const probe = tf.ones([1, UNITS]);
    const expected = model.predict(probe) as TfCore.Tensor;
    probe.dispose();
    model.dispose();
    return expected;
  }

  /** A hand-written graph model: y = x · W, W from a weight file. */
  async function saveGraphModel(name: string): Promise<void> {
    const folder = path.join(dir, name);
    await mkdir(folder, { recursive: true });
    await writeFile(
      path.join(folder, 'w.bin'),
      Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer),
    );
    const float = { type: 'DT_FLOAT' };
    await writeFile(
      path.join(folder, 'model.json'),
      JSON.stringify({
        format: 'graph-model',
        modelTopology: {
          node: [
            {
              name: 'x',
              op: 'Placeholder',
              attr: { dtype: float, shape: { shape: { dim: [{ size: '-1' }, { size: '3' }] } } },
            },
            {
              name: 'w',
              op: 'Const',
              attr: {
                dtype: float,
                value: {
                  tensor: {
                    dtype: 'DT_FLOAT',
                    tensorShape: { dim: [{ size: '3' }, { size: '2' }] },
                  },
                },
              },
            },
            {
              name: 'y',
              op: 'MatMul',
              input: ['x', 'w'],
              attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } },
            },
          ],
          versions: { producer: 1 },
        },
        weightsManifest: [
          { paths: ['w.bin'], weights: [{ name: 'w', shape: [3, 2], dtype: 'float32' }] },
        ],
      }),
    );
  }

  beforeAll(async () => {
    Logger.overrideLogger(false);
    gpu = new GpuService(AppConfig.fromEnv({ API_KEYS: 'k', TFJS_BACKEND: 'auto' }));
    await gpu.init();
    tf = gpu.tf;
    dir = await mkdtemp(path.join(tmpdir(), 'model-registry-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    Logger.overrideLogger(new Logger());
  });

  it('loads a saved LayersModel from MODELS_DIR and predicts as the original did', async () => {
    const expected = await saveLayersModel('denoiser', 1);
    const baseline = tf.memory().numTensors;
    const models = registry();
    expect(models.has('denoiser')).toBe(true);
    expect(models.has('absent')).toBe(false);
    expect(models.has('../denoiser')).toBe(false);

    const predict = jest.spyOn(tfl.LayersModel.prototype, 'predict');
    const loaded = await models.get('denoiser');
    // The warm-up inference ran at load.
    expect(predict).toHaveBeenCalledTimes(1);
    predict.mockRestore();
    expect(loaded).toMatchObject({ name: 'denoiser', kind: 'layers', bytes: MODEL_BYTES });
    expect(models.loaded()).toEqual([
      { name: 'denoiser', kind: 'layers', bytes: MODEL_BYTES, loadedAt: expect.any(String) },
    ]);
    if (loaded.kind !== 'layers') throw new Error('expected layers');
    const probe = tf.ones([1, UNITS]);
    const got = loaded.model.predict(probe) as TfCore.Tensor;
    expect(Array.from(await got.data())).toEqual(Array.from(await expected.data()));
    tf.dispose([probe, got, expected]);

    // Cached: the same instance, no second load.
    expect(await models.get('denoiser')).toBe(loaded);
    models.onModuleDestroy();
    expect(models.loaded()).toEqual([]);
    expect(tf.memory().numTensors).toBe(baseline - 1);
  });

  it('loads a GraphModel and runs it', async () => {
    await saveGraphModel('projector');
    const models = registry();
    const baseline = tf.memory().numTensors;
    const out = await models.use('projector', async (loaded) => {
      expect(loaded).toMatchObject({ kind: 'graph', bytes: 24 });
      if (loaded.kind !== 'graph') throw new Error('expected graph');
      const x = tf.tensor2d([[1, 1, 1]]);
      const y = loaded.model.execute(x) as TfCore.Tensor;
      const values = Array.from(await y.data());
      tf.dispose([x, y]);
      return values;
    });
    expect(out).toEqual([9, 12]);
    models.onModuleDestroy();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('evicts the least recently used model under its budget and disposes it', async () => {
    for (const [i, name] of ['a', 'b', 'c'].entries())
      (await saveLayersModel(name, 10 + i)).dispose();
    const baseline = tf.memory().numTensors;
    const models = registry(MIB);
    await models.get('a');
    await models.get('b');
    await models.get('a'); // a is now more recent than b
    await models.get('c');
    expect(models.loaded().map((m) => m.name)).toEqual(['c', 'a']);
    expect(models.usedBytes).toBe(2 * MODEL_BYTES);
    // b's weights are gone: two models' worth of tensors remain.
    const perModel = 2;
    expect(tf.memory().numTensors).toBe(baseline + 2 * perModel);

    // Loading b again evicts a, the least recent now.
    await models.get('b');
    expect(models.loaded().map((m) => m.name)).toEqual(['b', 'c']);
    models.onModuleDestroy();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('does not dispose a model in use; it goes when its user is done', async () => {
    const models = registry(MIB);
    const baseline = tf.memory().numTensors;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const using = models.use('a', async (loaded) => {
      entered();
      await held;
      if (loaded.kind !== 'layers') throw new Error('expected layers');
      const x = tf.ones([1, UNITS]);
      const y = loaded.model.predict(x) as TfCore.Tensor;
      const n = (await y.data()).length;
      tf.dispose([x, y]);
      return n;
    });
    await inside;
    await models.get('b');
    await models.get('c'); // evicts a (least recent) while it is in use
    expect(models.loaded().map((m) => m.name)).toEqual(['c', 'b']);
    release();
    expect(await using).toBe(UNITS);
    models.onModuleDestroy();
    expect(tf.memory().numTensors).toBe(baseline);
  });

  it('refuses a model bigger than the whole budget, a bad name, and a missing model', async () => {
    await saveLayersModel('big', 3).then((t) => t.dispose());
    const models = registry(MIB);
    // The manifest lists its 361 KB shard three times: 1.08 MB of weights, over the 1 MiB budget.
    await writeFile(
      path.join(dir, 'big', 'model.json'),
      JSON.stringify({
        format: 'layers-model',
        modelTopology: { class_name: 'Sequential', config: {} },
        weightsManifest: [{ paths: ['weights.bin', 'weights.bin', 'weights.bin'], weights: [] }],
      }),
    );
    await expect(models.get('big')).rejects.toThrow(/more than MODEL_CACHE_BYTES/);
    await expect(models.get('../etc')).rejects.toThrow(ModelRegistryError);
    await expect(models.get('nothing_here')).rejects.toThrow(/does not exist/);
  });
});
