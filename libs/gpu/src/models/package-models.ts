import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ModelConfig } from './model-config';
import { toArrayBuffer, type TfjsArtifacts } from './model-files';
import type { ModelSource, ModelVersionEntry } from './model-source';

const nodeRequire = createRequire(__filename);

/**
 * The root folder of an installed npm package. Packages whose `exports` hide their files (the
 * upscalerjs ones) are found by walking up from whatever `require.resolve` gives.
 */
export function packageRoot(pkg: string): string | undefined {
  let entry: string;
  try {
    entry = nodeRequire.resolve(`${pkg}/package.json`);
    return path.dirname(entry);
  } catch {
    // `exports` may not list package.json.
  }
  try {
    entry = nodeRequire.resolve(pkg);
  } catch {
    return undefined;
  }
  for (let dir = path.dirname(entry); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === pkg)
          return dir;
      } catch {
        // keep walking
      }
    }
  }
  return undefined;
}

function packageVersion(root: string): string {
  return (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string })
    .version;
}

export type EsrganSize = 'slim' | 'medium' | 'thick';
export const ESRGAN_SCALES = [2, 3, 4] as const;
export type EsrganScale = (typeof ESRGAN_SCALES)[number];

/** The repository's name of an ESRGAN model: `esrgan-<size>-x<scale>`. */
export function esrganModelName(size: EsrganSize, scale: EsrganScale): string {
  return `esrgan-${size}-x${scale}`;
}

/**
 * Rough backend memory of one 128² patch beyond the weights (activations of the widest layers at
 * float32, with the ×scale output): what admission control reserves per tile.
 */
const ESRGAN_PATCH_BYTES: Record<EsrganSize, number> = {
  slim: 48 << 20,
  medium: 96 << 20,
  thick: 320 << 20,
};

function esrganVersions(size: EsrganSize): ModelVersionEntry[] {
  const pkg = `@upscalerjs/esrgan-${size}`;
  const root = packageRoot(pkg);
  if (!root) return [];
  const version = packageVersion(root);
  return ESRGAN_SCALES.filter((s) =>
    existsSync(path.join(root, 'models', `x${s}`, 'model.json')),
  ).map((scale) => {
    const dir = path.join(root, 'models', `x${scale}`);
    // slim and medium are RDN (0–255 in and out); thick is RRDN (0–1) with custom layers.
    const range: [number, number] = size === 'thick' ? [0, 1] : [0, 255];
    const config: ModelConfig = {
      name: esrganModelName(size, scale),
      version,
      format: 'tfjs-layers',
      description: `ESRGAN ${size} super-resolution ×${scale} (${size === 'thick' ? 'RRDN' : 'RDN'}, trained on DIV2K)`,
      license: 'MIT',
      origin: `npm ${pkg}@${version} (UpscalerJS, Kevin Scott)`,
      model_file: 'model.json',
      inputs: [{ name: 'input', shape: [null, null, null, 3], dtype: 'float32', range }],
      outputs: [{ name: 'output', shape: [null, null, null, 3], dtype: 'float32', range }],
      preferred_batch_sizes: [1],
      memory_bytes: ESRGAN_PATCH_BYTES[size] * (scale / 4) ** 2 + (8 << 20),
      warmup: { shape: [1, 16, 16, 3] },
      ...(size === 'thick' ? { custom_layers: ['MultiplyBeta', `PixelShuffle${scale}x`] } : {}),
    };
    return {
      config,
      source: 'package',
      location: `${pkg}/models/x${scale}`,
      localDir: async () => dir,
    };
  });
}

/** The five classes of the nsfwjs models, in output order. */
export const NSFW_CLASSES = ['Drawing', 'Hentai', 'Neutral', 'Porn', 'Sexy'] as const;
export const NSFW_MODEL = 'nsfw-mobilenet-v2';

/** nsfwjs ships its weights as JS modules (a model.json object and base64 shards). */
function nsfwVersions(): ModelVersionEntry[] {
  const root = packageRoot('nsfwjs');
  if (!root) return [];
  const dir = path.join(root, 'dist', 'models', 'mobilenet_v2');
  if (!existsSync(path.join(dir, 'model.min.js'))) return [];
  const version = packageVersion(root);
  const config: ModelConfig = {
    name: NSFW_MODEL,
    version,
    format: 'tfjs-layers',
    description: `Image safety classifier (MobileNetV2, 224², classes ${NSFW_CLASSES.join(', ')})`,
    license: 'MIT',
    origin: `npm nsfwjs@${version} (Infinite Red)`,
    inputs: [{ name: 'input_1', shape: [null, 224, 224, 3], dtype: 'float32', range: [0, 1] }],
    outputs: [{ name: 'probabilities', shape: [null, 5], dtype: 'float32', range: [0, 1] }],
    preferred_batch_sizes: [1, 4, 8],
    memory_bytes: 32 << 20,
    warmup: { shape: [1, 224, 224, 3] },
  };
  const artifacts = async (): Promise<TfjsArtifacts> => {
    const json = nodeRequire(path.join(dir, 'model.min.js')) as TfjsArtifacts['json'];
    const shards = (json.weightsManifest ?? []).flatMap((g) => g.paths);
    const bufs = shards.map((p) => {
      const b64 = nodeRequire(path.join(dir, `${p}.min.js`)) as string;
      return Buffer.from(b64, 'base64');
    });
    return { json, weights: toArrayBuffer(Buffer.concat(bufs)) };
  };
  return [
    {
      config,
      source: 'package',
      location: 'nsfwjs/dist/models/mobilenet_v2',
      localDir: async () => dir,
      artifacts,
    },
  ];
}

export const HUMAN_FACE_BODY_MODEL = 'human-face-body';

/**
 * @vladmandic/human's face pipeline (BlazeFace detection, 468-point mesh with iris, emotion,
 * FaceRes age/gender/1024-d embedding) and MoveNet Lightning body pose, as one pipeline.
 */
function humanVersions(): ModelVersionEntry[] {
  const root = packageRoot('@vladmandic/human');
  if (!root) return [];
  const dir = path.join(root, 'models');
  if (!existsSync(path.join(dir, 'blazeface.json'))) return [];
  const version = packageVersion(root);
  const config: ModelConfig = {
    name: HUMAN_FACE_BODY_MODEL,
    version,
    format: 'human',
    description:
      'Face detection, mesh, iris, emotion, age/gender and 1024-d face embedding; MoveNet body pose',
    license: 'MIT',
    origin: `npm @vladmandic/human@${version} (Vladimir Mandic; models from MediaPipe, Google, FaceRes)`,
    inputs: [{ name: 'image', shape: [1, null, null, 3], dtype: 'int32', range: [0, 255] }],
    outputs: [],
    preferred_batch_sizes: [1],
    memory_bytes: 128 << 20,
    human: {
      face: {
        enabled: true,
        detector: {
          enabled: true,
          modelPath: 'blazeface.json',
          rotation: false,
          maxDetected: 8,
          return: false,
        },
        mesh: { enabled: true, modelPath: 'facemesh.json' },
        iris: { enabled: true, modelPath: 'iris.json' },
        emotion: { enabled: true, modelPath: 'emotion.json' },
        description: { enabled: true, modelPath: 'faceres.json' },
        antispoof: { enabled: false },
        liveness: { enabled: false },
        attention: { enabled: false },
        gear: { enabled: false },
      },
      body: { enabled: true, modelPath: 'movenet-lightning.json', maxDetected: 1 },
      hand: { enabled: false },
      object: { enabled: false },
      gesture: { enabled: false },
      segmentation: { enabled: false },
    },
  };
  return [
    { config, source: 'package', location: '@vladmandic/human/models', localDir: async () => dir },
  ];
}

/** The trained networks that ship inside our npm dependencies (absent packages list nothing). */
export class PackageModelSource implements ModelSource {
  readonly name = 'package' as const;

  async list(): Promise<ModelVersionEntry[]> {
    return [
      ...(['slim', 'medium', 'thick'] as const).flatMap(esrganVersions),
      ...nsfwVersions(),
      ...humanVersions(),
    ];
  }
}
