import { Injectable } from '@nestjs/common';
import sharp from 'sharp';
import {
  GpuService,
  HUMAN_FACE_BODY_MODEL,
  ModelRepository,
  type HumanInstance,
  type HumanResult,
} from '@app/gpu';
import { InputFetchError } from '../../inputs/input-fetch.error';

/**
 * Images are decoded to at most this many pixels on their long side before detection: the face
 * networks work on crops of at most 256² (BlazeFace sees the whole image at 256²), so more
 * pixels only cost memory (a 4K int32 tensor is 100 MB) and the resize.
 */
export const DETECTION_MAX_SIDE = 2048;

/** Bodies MoveNet reports below this score are noise (it always returns one pose). */
const BODY_MIN_SCORE = 0.3;

/** Mesh points of the landmarks we report (MediaPipe face mesh with iris, 478 points). */
const LANDMARK_POINTS = {
  // "right" and "left" are the subject's: a frontal face's right eye is on the image's left.
  right_eye: 473,
  left_eye: 468,
  nose_tip: 1,
  mouth_right: 61,
  mouth_left: 291,
  chin: 152,
} as const;
export type LandmarkName = keyof typeof LANDMARK_POINTS;

export interface Point {
  x: number;
  y: number;
}

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface FaceFinding {
  /** Detection confidence, 0..1. */
  score: number;
  /** In pixels of the image as given (upright), clamped to it. */
  box: Box;
  /** The same box in 0..1 of the image's width and height. */
  box_normalized: Box;
  /** A few mesh points, pixels; null when the mesh did not run. */
  landmarks: Record<LandmarkName, Point> | null;
  /** Head rotation, degrees (roll: tilt, yaw: turn, pitch: nod); null without a mesh. */
  rotation: { roll: number; yaw: number; pitch: number } | null;
  age: number | null;
  gender: 'female' | 'male' | 'unknown';
  gender_score: number;
  emotion: { top: string | null; scores: Record<string, number> };
  /** FaceRes descriptor (1024 floats); empty when it did not run. */
  embedding: number[];
}

export interface BodyKeypoint {
  part: string;
  x: number;
  y: number;
  score: number;
}

export interface BodyPose {
  score: number;
  box: Box;
  keypoints: BodyKeypoint[];
}

/** What the face and body networks found in one image. */
export interface HumanFindings {
  width: number;
  height: number;
  faces: FaceFinding[];
  bodies: BodyPose[];
  /** Time the networks took, ms (decode excluded). */
  inference_ms: number;
}

/** Decoded rgb24 pixels and how they map to the image as given. */
export interface DetectionImage {
  data: Buffer;
  width: number;
  height: number;
  /** Upright size of the image as given. */
  originalWidth: number;
  originalHeight: number;
}

/** The model version an analysis ran with. */
export interface FaceModelInfo {
  name: string;
  version: string;
}

/** Human keeps per-call state (the image being processed, frame caches): one call at a time. */
const queues = new WeakMap<HumanInstance, Promise<unknown>>();

function serialized<T>(human: HumanInstance, fn: () => Promise<T>): Promise<T> {
  const previous = queues.get(human) ?? Promise.resolve();
  const next = previous.then(fn, fn);
  queues.set(
    human,
    next.catch(() => undefined),
  );
  return next;
}

/**
 * Faces (box, landmarks, age, gender, emotion, FaceRes embedding) and body pose (MoveNet) of an
 * image, by the `human-face-body` model of the ModelRepository.
 */
@Injectable()
export class FaceAnalyzer {
  constructor(
    private readonly gpu: GpuService,
    private readonly models: ModelRepository,
  ) {}

  /** Decodes an input image upright, flattened on black, long side at most DETECTION_MAX_SIDE. */
  static async decode(data: Buffer, field: string, url: string): Promise<DetectionImage> {
    try {
      const upright = sharp(data).rotate();
      const meta = await sharp(data).metadata();
      if (!meta.width || !meta.height) throw new Error('no image size');
      const sideways = (meta.orientation ?? 1) >= 5;
      const originalWidth = sideways ? meta.height : meta.width;
      const originalHeight = sideways ? meta.width : meta.height;
      const { data: pixels, info } = await upright
        .resize({
          width: DETECTION_MAX_SIDE,
          height: DETECTION_MAX_SIDE,
          fit: 'inside',
          withoutEnlargement: true,
        })
        .flatten({ background: '#000000' })
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
      return {
        data: pixels,
        width: info.width,
        height: info.height,
        originalWidth,
        originalHeight,
      };
    } catch (err) {
      throw InputFetchError.undecodableImage(field, url, err);
    }
  }

  /** Runs `fn` with the model loaded; `analyze` inside it runs the networks. */
  async use<T>(
    fn: (
      run: (image: DetectionImage) => Promise<HumanFindings>,
      model: FaceModelInfo,
    ) => Promise<T>,
  ): Promise<T> {
    await this.gpu.init();
    return this.models.use(HUMAN_FACE_BODY_MODEL, (m) => {
      const human = m.human();
      const run = (image: DetectionImage) =>
        serialized(human, async () => {
          const started = performance.now();
          const result = await this.gpu.scoped('human-face-body', async () => {
            const input = this.gpu.tf.tensor4d(
              Int32Array.from(image.data),
              [1, image.height, image.width, 3],
              'int32',
            );
            try {
              return await m.infer(() => human.detect(input));
            } finally {
              input.dispose();
            }
          });
          if (result.error) throw new Error(`face analysis failed: ${result.error}`);
          return findings(result, image, performance.now() - started);
        });
      return fn(run, { name: m.name, version: m.version });
    });
  }
}

/** Human's result in our terms, coordinates scaled back to the image as given. */
function findings(result: HumanResult, image: DetectionImage, ms: number): HumanFindings {
  const sx = image.originalWidth / image.width;
  const sy = image.originalHeight / image.height;
  const W = image.originalWidth;
  const H = image.originalHeight;
  const point = (p: readonly number[]): Point => ({
    x: round(p[0] * sx, 1),
    y: round(p[1] * sy, 1),
  });
  const box = (b: readonly number[]): Box => {
    const x = clamp(b[0] * sx, 0, W);
    const y = clamp(b[1] * sy, 0, H);
    return {
      x: round(x, 1),
      y: round(y, 1),
      width: round(clamp(b[2] * sx, 0, W - x), 1),
      height: round(clamp(b[3] * sy, 0, H - y), 1),
    };
  };
  const normalized = (b: Box): Box => ({
    x: round(b.x / W, 4),
    y: round(b.y / H, 4),
    width: round(b.width / W, 4),
    height: round(b.height / H, 4),
  });

  const faces = result.face.map((f): FaceFinding => {
    const faceBox = box(f.box as number[]);
    const mesh = f.mesh as number[][] | undefined;
    const landmarks =
      mesh && mesh.length >= 478
        ? (Object.fromEntries(
            Object.entries(LANDMARK_POINTS).map(([name, i]) => [name, point(mesh[i])]),
          ) as Record<LandmarkName, Point>)
        : null;
    const angle = (f.rotation as { angle?: Record<string, number> } | undefined)?.angle;
    const emotions = (f.emotion as Array<{ emotion: string; score: number }> | undefined) ?? [];
    const gender =
      f.gender === 'female' || f.gender === 'male' ? (f.gender as 'female' | 'male') : 'unknown';
    return {
      score: round(Number(f.score ?? 0), 3),
      box: faceBox,
      box_normalized: normalized(faceBox),
      landmarks,
      rotation: angle
        ? { roll: degrees(angle.roll), yaw: degrees(angle.yaw), pitch: degrees(angle.pitch) }
        : null,
      age: typeof f.age === 'number' && f.age > 0 ? round(f.age, 1) : null,
      gender,
      gender_score: gender === 'unknown' ? 0 : round(Number(f.genderScore ?? 0), 3),
      emotion: {
        top: emotions[0]?.emotion ?? null,
        scores: Object.fromEntries(emotions.map((e) => [e.emotion, round(e.score, 3)])),
      },
      embedding: Array.isArray(f.embedding) ? (f.embedding as number[]) : [],
    };
  });

  const bodies = result.body
    .filter((b) => Number(b.score) >= BODY_MIN_SCORE)
    .map((b): BodyPose => ({
      score: round(Number(b.score), 3),
      box: box(b.box as number[]),
      keypoints: (b.keypoints as Array<{ part: string; position: number[]; score: number }>).map(
        (k) => ({ part: k.part, ...point(k.position), score: round(k.score, 3) }),
      ),
    }));
  return { width: W, height: H, faces, bodies, inference_ms: Math.round(ms) };
}

/**
 * The face an image is compared by: the largest (the character in a portrait or shot), the more
 * confident one of two of equal size; undefined without a face that has an embedding.
 */
export function bestFace(faces: readonly FaceFinding[]): FaceFinding | undefined {
  let best: FaceFinding | undefined;
  for (const f of faces) {
    if (f.embedding.length === 0) continue;
    const area = f.box.width * f.box.height;
    const bestArea = best ? best.box.width * best.box.height : -1;
    if (area > bestArea || (area === bestArea && best && f.score > best.score)) best = f;
  }
  return best;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function round(v: number, decimals: number): number {
  const k = 10 ** decimals;
  return Math.round(v * k) / k;
}

function degrees(radians: number | undefined): number {
  return round(((radians ?? 0) * 180) / Math.PI, 1);
}
