import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { layers, sequential } from '@tensorflow/tfjs-layers';
import { waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';

/** A small trained-shape layers model, saved as model.json + one shard; returns the files. */
async function tinyModel(units: number): Promise<{ json: string; weights: Buffer }> {
  await tf.ready();
  const model = sequential({ layers: [layers.dense({ units, inputShape: [8] })] });
  let saved: { json: string; weights: Buffer } | undefined;
  await model.save({
    save: async (artifacts) => {
      const weights = Buffer.from(artifacts.weightData as ArrayBuffer);
      const json = JSON.stringify({
        format: 'layers-model',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      });
      saved = { json, weights };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    },
  });
  model.dispose();
  return saved!;
}

function config(name: string, version: string, files?: unknown[]): string {
  return JSON.stringify({
    name,
    version,
    format: 'tfjs-layers',
    description: `test model ${name}`,
    inputs: [{ name: 'x', shape: [null, 8], dtype: 'float32' }],
    outputs: [{ name: 'y', shape: [null, 4], dtype: 'float32' }],
    ...(files ? { files } : {}),
  });
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface HealthBody {
  status: string;
  info?: Record<string, Record<string, unknown>>;
  error?: Record<string, Record<string, unknown>>;
  details: Record<string, Record<string, unknown>>;
}

/**
 * The model repository seen from outside: a worker is not ready until its preloaded models are
 * warm (readiness names the one still loading), models come from MODELS_DIR, object storage
 * (downloaded, checked) and the packages, and GET /api/v1/models says which worker holds what.
 */
describe('model repository end to end', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'models-e2e-'));
  const modelsDir = path.join(root, 'models');
  const storageDir = path.join(root, 'storage');
  const cacheDir = path.join(root, 'cache');
  const fifo = path.join(modelsDir, 'slow-model', '1', 'weights.bin');
  let slowWeights: Buffer;
  let storedWeights: Buffer;
  const service = new TestService({
    workerHealth: true,
    waitForModels: false,
    env: {
      // gpu_medium: its task types declare ESRGAN, Human, segmentation and the safety model.
      WORKER_QUEUES: 'gpu_medium',
      MODELS_DIR: modelsDir,
      STORAGE_DRIVER: 'local',
      STORAGE_LOCAL_DIR: storageDir,
      MODEL_CACHE_DIR: cacheDir,
      MODEL_PRELOAD: 'declared,slow-model,stored-model',
      METRICS_ENABLED: 'true',
    },
  });

  beforeAll(async () => {
    // slow-model: its weights are a named pipe, so its load waits until the test writes them.
    const slow = await tinyModel(4);
    slowWeights = slow.weights;
    mkdirSync(path.dirname(fifo), { recursive: true });
    writeFileSync(path.join(modelsDir, 'slow-model', '1', 'model.json'), slow.json);
    writeFileSync(
      path.join(modelsDir, 'slow-model', '1', 'config.json'),
      config('slow-model', '1'),
    );
    execFileSync('mkfifo', [fifo]);

    // stored-model in object storage, versions 1 and 2 (2 is newest); bad-model's digest is wrong.
    const stored = await tinyModel(4);
    storedWeights = stored.weights;
    for (const version of ['1', '2']) {
      const dir = path.join(storageDir, 'models', 'stored-model', version);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'model.json'), stored.json);
      writeFileSync(path.join(dir, 'weights.bin'), stored.weights);
      const files = [
        { path: 'model.json', bytes: Buffer.byteLength(stored.json), sha256: sha256(stored.json) },
        { path: 'weights.bin', bytes: stored.weights.length, sha256: sha256(stored.weights) },
      ];
      writeFileSync(path.join(dir, 'config.json'), config('stored-model', version, files));
    }
    const bad = path.join(storageDir, 'models', 'bad-model', '1');
    mkdirSync(bad, { recursive: true });
    writeFileSync(path.join(bad, 'model.json'), stored.json);
    writeFileSync(path.join(bad, 'weights.bin'), stored.weights);
    writeFileSync(
      path.join(bad, 'config.json'),
      config('bad-model', '1', [
        { path: 'model.json', bytes: Buffer.byteLength(stored.json) },
        { path: 'weights.bin', bytes: stored.weights.length, sha256: '0'.repeat(64) },
      ]),
    );
    await service.start();
  });

  afterAll(async () => {
    await service.close();
    rmSync(root, { recursive: true, force: true });
  });

  const ready = async (): Promise<{ status: number; body: HealthBody }> => {
    const res = await fetch(`${service.workerHealthUrl}/health/ready`);
    return { status: res.status, body: (await res.json()) as HealthBody };
  };

  it('is not ready while a preloaded model loads, names it, and is ready once it is warm', async () => {
    const before = await ready();
    expect(before.status).toBe(503);
    expect(before.body.details.models).toMatchObject({
      status: 'down',
      loading: expect.arrayContaining(['slow-model']),
    });

    // Liveness answers meanwhile.
    expect((await fetch(`${service.workerHealthUrl}/health/live`)).status).toBe(200);

    const pipe = await open(fifo, 'w');
    await pipe.write(slowWeights);
    await pipe.close();

    const after = await waitFor(
      async () => {
        const r = await ready();
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
    expect(after.body.details.models).toMatchObject({
      status: 'up',
      ready: expect.arrayContaining([
        'slow-model',
        'stored-model',
        // declared by upscale_image, analyze_character, remove_background and the safety check
        'esrgan-slim-x4',
        'esrgan-medium-x2',
        'human-face-body',
        'person-segmentation-rvm',
        'person-segmentation-selfie',
        'nsfw-mobilenet-v2',
      ]),
    });
    expect(after.body.details.models.loading).toBeUndefined();
  });

  it('GET /models lists every source, newest version first, and which worker holds what', async () => {
    const body = await waitFor(
      async () => {
        const res = await service.http.get('/models');
        expect(res.status).toBe(200);
        const slow = res.body.models.find((m: { name: string }) => m.name === 'slow-model');
        return slow?.versions[0]?.workers?.[0]?.state === 'ready' ? res.body : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const byName = new Map<string, any>(body.models.map((m: any) => [m.name, m]));
    const workerId = service.config.worker.id;
    expect(body.workers).toEqual([workerId]);

    // The trained networks of the npm packages and the ones this repository ships.
    for (const size of ['slim', 'medium', 'thick'])
      for (const scale of [2, 3, 4])
        expect(byName.get(`esrgan-${size}-x${scale}`)?.versions[0]).toMatchObject({
          source: 'package',
          format: 'tfjs-layers',
          license: 'MIT',
        });
    expect(byName.get('nsfw-mobilenet-v2')?.versions[0]).toMatchObject({ source: 'package' });
    expect(byName.get('human-face-body')?.versions[0]).toMatchObject({
      source: 'package',
      format: 'human',
    });
    for (const name of ['person-segmentation-selfie', 'person-segmentation-rvm'])
      expect(byName.get(name)?.versions[0]).toMatchObject({ source: 'bundled', version: '1' });

    // The worker holds what its task types declared, warmed up; thick loads on first use.
    expect(byName.get('esrgan-medium-x4').versions[0].workers).toEqual([
      expect.objectContaining({ worker_id: workerId, state: 'ready', backend: 'wasm' }),
    ]);
    expect(byName.get('esrgan-thick-x4').versions[0].workers).toEqual([]);
    expect(byName.get('slow-model').versions[0]).toMatchObject({
      version: '1',
      source: 'models_dir',
      workers: [
        {
          worker_id: workerId,
          state: 'ready',
          backend: 'wasm',
          bytes: slowWeights.length,
          load_ms: expect.any(Number),
          warmup_ms: expect.any(Number),
        },
      ],
    });
    // Object storage: both versions listed, the newest loaded (downloaded into the cache).
    const stored = byName.get('stored-model');
    expect(stored.versions.map((v: any) => v.version)).toEqual(['2', '1']);
    expect(stored.versions[0]).toMatchObject({
      source: 'object_storage',
      workers: [{ worker_id: workerId, state: 'ready', bytes: storedWeights.length }],
    });
    expect(stored.versions[1].workers).toEqual([]);
  });

  it('downloads an object-storage version into the cache, checked against its digests', async () => {
    const cached = path.join(cacheDir, 'stored-model', '2', 'weights.bin');
    expect(sha256(readFileSync(cached))).toBe(sha256(storedWeights));
  });

  it('reports model load and warm-up in the worker metrics', async () => {
    const text = await (await fetch(`${service.workerHealthUrl}/metrics`)).text();
    expect(text).toMatch(
      /model_load_seconds_count\{app="worker",model="slow-model",version="1",backend="wasm"\} 1/,
    );
    expect(text).toMatch(
      /model_warmup_seconds_count\{app="worker",model="stored-model",version="2",backend="wasm"\} 1/,
    );
  });
});
