import { VIDEO_LIGHTING_PRESETS, type VideoLightingPreset } from '@app/tasks';

type Rgb = readonly [number, number, number];

/** A light from one side of the frame, coloured. */
interface KeyLight {
  /** Where it comes from, in frame units (x right, y down). */
  dir: readonly [number, number];
  /** 1 = soft gradient across the frame, 6 = a hard edge. */
  hardness: number;
  strength: number;
  colour: Rgb;
}

/**
 * A lighting preset as numbers. The colour part (matrix, lift, contrast) does not depend on
 * where a pixel is, so it is applied once to each storyboard frame; the screen part (key light,
 * blinds, vignette) stays put while the camera moves, so it multiplies every output frame.
 */
export interface SceneGrade {
  preset: VideoLightingPreset;
  exposure: number;
  /** Black level raised to this (0..1). */
  lift: number;
  /** 1 keeps colours, 0 is black and white. */
  saturation: number;
  /** Per-channel gain after saturation (the diagonal of the colour matrix). */
  tint: Rgb;
  /** > 0: S-curve strength; < 0: flatter. */
  contrast: number;
  /** Light that does not depend on direction, relative to the key. */
  ambient: number;
  key: KeyLight;
  /** Darkening towards the corners (0..1). */
  vignette: number;
  /** Light falling through blinds: stripes across the key light. */
  blinds?: { angle: number; period: number; depth: number };
}

type Grade = Omit<SceneGrade, 'preset'>;

const PRESETS: Record<VideoLightingPreset, Grade> = {
  natural: {
    exposure: 1,
    lift: 0,
    saturation: 1.05,
    tint: [1.02, 1, 0.97],
    contrast: 0.1,
    ambient: 0.85,
    key: { dir: [-0.6, -0.8], hardness: 1.2, strength: 0.3, colour: [1, 0.98, 0.94] },
    vignette: 0.18,
  },
  noir_dramatic: {
    exposure: 1,
    lift: 0,
    saturation: 0,
    tint: [0.97, 0.99, 1.04],
    contrast: 0.6,
    ambient: 0.35,
    key: { dir: [0.8, -0.6], hardness: 4, strength: 1.1, colour: [1, 1, 1] },
    vignette: 0.6,
    blinds: { angle: -0.5, period: 0.16, depth: 0.5 },
  },
  golden_hour: {
    exposure: 1,
    lift: 0.02,
    saturation: 1.15,
    tint: [1.12, 0.98, 0.76],
    contrast: 0.15,
    ambient: 0.6,
    key: { dir: [-1, 0.15], hardness: 2, strength: 0.7, colour: [1, 0.78, 0.5] },
    vignette: 0.25,
  },
  night: {
    exposure: 0.62,
    lift: 0,
    saturation: 0.6,
    tint: [0.62, 0.76, 1.08],
    contrast: 0.25,
    ambient: 0.55,
    key: { dir: [0.3, -1], hardness: 2.5, strength: 0.5, colour: [0.65, 0.78, 1] },
    vignette: 0.5,
  },
  high_key: {
    exposure: 1.15,
    lift: 0.14,
    saturation: 0.85,
    tint: [1, 1, 1],
    contrast: -0.35,
    ambient: 0.95,
    key: { dir: [0, -1], hardness: 1, strength: 0.1, colour: [1, 1, 1] },
    vignette: 0,
  },
};

export function sceneGradeFor(lighting: string | undefined): SceneGrade {
  const preset = (VIDEO_LIGHTING_PRESETS as readonly string[]).includes(lighting ?? '')
    ? (lighting as VideoLightingPreset)
    : 'natural';
  return { preset, ...PRESETS[preset] };
}

const LUMA: Rgb = [0.2126, 0.7152, 0.0722];

/**
 * The colour matrix: saturation (a mix with BT.709 luma), then tint, times exposure. Row-major
 * 3×3 for `out = M · rgb`.
 */
export function colourMatrix(grade: SceneGrade): number[] {
  const m: number[] = [];
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) {
      const sat = (1 - grade.saturation) * LUMA[c] + (r === c ? grade.saturation : 0);
      m.push(sat * grade.tint[r] * grade.exposure);
    }
  }
  return m;
}

/**
 * The colour grade of rgb24 bytes, by plain loops in float64: colour matrix, lift, clip, contrast
 * curve, then rounded half up and clipped to bytes. At most one step from the tfjs reference
 * (`gradeColours` in scene.reference.ts, float32). For a 2035×1145 storyboard frame ~25 ms here,
 * where the tfjs wasm path took ~150–400 ms (tensor upload, ops, read-back).
 */
export function gradeBytes(grade: SceneGrade, src: Uint8Array, dst = new Uint8Array(src.length)) {
  if (dst.length < src.length || src.length % 3 !== 0) throw new RangeError('pixels of rgb24');
  const m = colourMatrix(grade).map((v) => v / 255);
  const [m0, m1, m2, m3, m4, m5, m6, m7, m8] = m;
  const { lift } = grade;
  const k = grade.contrast;
  const channel = (x: number): number => {
    let c = lift !== 0 ? x * (1 - lift) + lift : x;
    c = c < 0 ? 0 : c > 1 ? 1 : c;
    if (k !== 0) c *= 1 - k + c * (3 * k - 2 * k * c);
    const v = c * 255 + 0.5;
    return v < 0 ? 0 : v > 255 ? 255 : v;
  };
  for (let i = 0; i < src.length; i += 3) {
    const r = src[i];
    const g = src[i + 1];
    const b = src[i + 2];
    // Uint8Array stores truncate: the rounding above is complete.
    dst[i] = channel(r * m0 + g * m1 + b * m2);
    dst[i + 1] = channel(r * m3 + g * m4 + b * m5);
    dst[i + 2] = channel(r * m6 + g * m7 + b * m8);
  }
  return dst;
}

/** Fixed-point unit of the light gains. */
export const GAIN_ONE = 256;
/** Gains are capped at this many times the input (keeps the fixed-point products in 16 bits). */
const MAX_GAIN = 4;

/**
 * A screen light (per pixel and channel, 1 = unchanged) as fixed-point gains for the camera
 * kernel: `round(light × 256)`, at most 4×.
 */
export function lightGains(light: ArrayLike<number>): Uint16Array {
  const gains = new Uint16Array(light.length);
  for (let i = 0; i < light.length; i++) {
    gains[i] = Math.min(MAX_GAIN * GAIN_ONE, Math.max(0, Math.round(light[i] * GAIN_ONE)));
  }
  return gains;
}

/**
 * `screenLight` (scale 1) as the camera kernel's fixed-point gains, `round(light × 256)` capped
 * at 4×, computed directly in float64 (the same formulas; within one step of the tfjs result,
 * which computes in float32). Plain loops over the frame: ~0.1 s for 1080p where the tensor ops
 * and reading them back take ~0.35 s, and no tfjs kernels to warm up before the first frame.
 */
export function screenGains(grade: SceneGrade, width: number, height: number): Uint16Array {
  const coords = (n: number) =>
    Float64Array.from({ length: n }, (_, i) =>
      n > 1 ? -1 + 1 / n + (i * (2 - 2 / n)) / (n - 1) : -1 + 1 / n,
    );
  const xs = coords(width);
  const ys = coords(height);
  const { key, blinds } = grade;
  const len = Math.hypot(key.dir[0], key.dir[1]) || 1;
  const kx = (key.dir[0] / len) * key.hardness;
  const ky = (key.dir[1] / len) * key.hardness;
  const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
  // The per-axis parts of the key ramp (sigmoid(a + b) = 1 / (1 + e^−a · e^−b): no exp per
  // pixel) and of the blinds' phase.
  const rampX = xs.map((x) => Math.exp(-x * kx));
  const rampY = ys.map((y) => Math.exp(-y * ky));
  const phaseX = blinds ? xs.map((x) => (x * Math.cos(blinds.angle)) / blinds.period) : undefined;
  const phaseY = blinds ? ys.map((y) => (y * Math.sin(blinds.angle)) / blinds.period) : undefined;
  const field = new Float64Array(width * height);
  let sum = 0;
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      let f = 1 / (1 + rampX[x] * rampY[y]);
      if (blinds && phaseX && phaseY) {
        const phase = phaseX[x] + phaseY[y];
        const slat = sigmoid((Math.abs(phase - Math.round(phase)) - 0.25) * 40);
        f *= 1 - slat * blinds.depth;
      }
      field[i] = f;
      sum += f;
    }
  }
  // The mean over pixels and channels of ambient + field · strength · colour.
  const colourMean = (key.colour[0] + key.colour[1] + key.colour[2]) / 3;
  const mean = grade.ambient + (key.strength * sum * colourMean) / (width * height);
  const gains = new Uint16Array(width * height * 3);
  const ambient = grade.ambient;
  const [r, g, b] = key.colour.map((c) => c * key.strength);
  const fade = grade.vignette * 0.45;
  const max = MAX_GAIN * GAIN_ONE;
  const fixed = (v: number) => (v >= max ? max : v <= 0 ? 0 : Math.round(v));
  for (let y = 0, i = 0; y < height; y++) {
    const y2 = ys[y] * ys[y];
    for (let x = 0; x < width; x++, i++) {
      const vignette = fade !== 0 ? Math.min(1, Math.max(0, 1 - (xs[x] * xs[x] + y2) * fade)) : 1;
      const scale = (GAIN_ONE * vignette) / mean;
      const f = field[i];
      gains[3 * i] = fixed((ambient + f * r) * scale);
      gains[3 * i + 1] = fixed((ambient + f * g) * scale);
      gains[3 * i + 2] = fixed((ambient + f * b) * scale);
    }
  }
  return gains;
}
