import { Injectable } from '@nestjs/common';
import sharp from 'sharp';
import { GpuService, ModelRepository, NSFW_CLASSES, NSFW_MODEL, type LoadedModel } from '@app/gpu';
import type { Tensor, Tensor3D } from '@tensorflow/tfjs-core';

export type SafetyClass = (typeof NSFW_CLASSES)[number];
/** The classifier's probabilities, one per class; they sum to 1. */
export type SafetyScores = Record<SafetyClass, number>;

/**
 * The classes whose probabilities add up to an image's unsafe score. Summed, not the largest of
 * them: the model spreads an explicit image's mass over neighbouring classes (0.4 Porn + 0.35 Sexy
 * is as unsafe as 0.75 Porn), and the sum is what "not Drawing or Neutral" means.
 */
export const UNSAFE_CLASSES = ['Porn', 'Hentai', 'Sexy'] as const satisfies readonly SafetyClass[];

/** Porn + Hentai + Sexy (0..1). */
export function unsafeScore(scores: SafetyScores): number {
  return round(UNSAFE_CLASSES.reduce((sum, c) => sum + scores[c], 0));
}

export interface SafetyClassification {
  scores: SafetyScores;
  unsafe_score: number;
}

export interface SafetyModelInfo {
  model: string;
  version: string;
}

/** An image to classify: its encoded bytes, or the path of an encoded file. */
export type SafetyImage = Buffer | string;

/** One of the images given to `classify` does not decode. */
export class UndecodableImageError extends Error {
  override readonly name = 'UndecodableImageError';
  constructor(
    readonly index: number,
    cause: unknown,
  ) {
    super(`not a decodable image (${cause instanceof Error ? cause.message : String(cause)})`, {
      cause,
    });
  }
}

/**
 * Larger images are first reduced to this many pixels on their longer side by sharp (bounded
 * memory: a 50 MP input would be 600 MB as a float tensor); the model's own bilinear step then
 * makes the 224² input from that, as nsfwjs does from the full image. Default 1024² outputs are
 * classified exactly as nsfwjs would.
 */
const MAX_DECODE_SIDE = 1024;

interface DecodedImage {
  data: Buffer;
  width: number;
  height: number;
}

/**
 * The image safety classifier: nsfwjs's MobileNetV2 (NSFW_MODEL from the model repository) with
 * nsfwjs's own preprocessing — RGB scaled to the model's input range, `resizeBilinear` to 224²
 * with aligned corners, no aspect kept — giving the five class probabilities (the network ends in
 * a softmax; nsfwjs reads them as they are). Several images run as one batch, in chunks of the
 * largest of the model's preferred batch sizes, yielding to the event loop between chunks.
 */
@Injectable()
export class SafetyClassifier {
  constructor(
    private readonly gpu: GpuService,
    private readonly models: ModelRepository,
  ) {}

  async classify(
    images: readonly SafetyImage[],
    signal?: AbortSignal,
  ): Promise<{ model: SafetyModelInfo; results: SafetyClassification[] }> {
    signal?.throwIfAborted();
    const decoded = await Promise.all(
      images.map((image, i) =>
        decode(image).catch((err: unknown) => {
          throw new UndecodableImageError(i, err);
        }),
      ),
    );
    signal?.throwIfAborted();
    await this.gpu.init();
    return this.models.use(NSFW_MODEL, async (m) => {
      const { height, width, range, batch } = modelInput(m);
      const results: SafetyClassification[] = [];
      for (let start = 0; start < decoded.length; start += batch) {
        signal?.throwIfAborted();
        const chunk = decoded.slice(start, start + batch);
        const probabilities = await this.gpu.scoped(`safety_check ${NSFW_MODEL}`, () =>
          m.infer(async () => {
            const out = this.gpu.tf.tidy(() => {
              const tf = this.gpu.tf;
              const inputs = chunk.map((img) => {
                const rgb = tf.tensor3d(Float32Array.from(img.data), [img.height, img.width, 3]);
                // x / 255 mapped onto the model's range ([0, 1] for this one).
                const scaled = tf.add(tf.mul(rgb, (range[1] - range[0]) / 255), range[0]);
                return img.height === height && img.width === width
                  ? (scaled as Tensor3D)
                  : tf.image.resizeBilinear(scaled as Tensor3D, [height, width], true);
              });
              return m.layers().predict(tf.stack(inputs)) as Tensor;
            });
            try {
              return await out.data();
            } finally {
              out.dispose();
            }
          }),
        );
        if (probabilities.length !== chunk.length * NSFW_CLASSES.length) {
          throw new Error(
            `${NSFW_MODEL} gave ${probabilities.length} values for ${chunk.length} image(s); expected ${NSFW_CLASSES.length} each`,
          );
        }
        chunk.forEach((_, i) => {
          const scores = Object.fromEntries(
            NSFW_CLASSES.map((c, k) => [c, round(probabilities[i * NSFW_CLASSES.length + k])]),
          ) as SafetyScores;
          results.push({ scores, unsafe_score: unsafeScore(scores) });
        });
        // A batch of 8 is about half a second of blocking work on wasm: let timers run.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return { model: { model: m.name, version: m.version }, results };
    });
  }
}

function modelInput(m: LoadedModel): {
  height: number;
  width: number;
  range: [number, number];
  batch: number;
} {
  const input = m.config.inputs[0];
  const [, height, width] = input?.shape ?? [];
  return {
    height: height ?? 224,
    width: width ?? 224,
    range: input?.range ?? [0, 1],
    batch: Math.max(1, ...(m.config.preferred_batch_sizes ?? [1])),
  };
}

/**
 * RGB pixels as a browser's canvas or tf.node.decodeImage(data, 3) gives them to nsfwjs: EXIF
 * orientation applied, alpha dropped (what lies under transparent pixels is in the file too).
 */
async function decode(image: SafetyImage): Promise<DecodedImage> {
  const { data, info } = await sharp(image)
    .rotate()
    .resize({
      width: MAX_DECODE_SIDE,
      height: MAX_DECODE_SIDE,
      fit: 'inside',
      withoutEnlargement: true,
    })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels, not 3`);
  return { data, width: info.width, height: info.height };
}

/** Six decimals: float32 probabilities carry no more, and metadata stays readable. */
function round(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}
