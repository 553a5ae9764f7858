import type * as TfCore from '@tensorflow/tfjs-core';
import { IMAGE_LIGHTING_PRESETS } from '@app/tasks';
import type { Rgb } from './description.embedding';

type Tf = typeof TfCore;
type LightingPreset = (typeof IMAGE_LIGHTING_PRESETS)[number];

interface Light {
  /** Direction the light comes from (image units, y down); the lit side gets the colour. */
  dir: readonly [number, number];
  /** 1 = soft gradient across the frame, 8 = a hard shadow edge. */
  hardness: number;
  strength: number;
  colour: Rgb;
}

/** A lighting preset as numbers: a colour grade plus light fields over the frame. */
export interface LightingSpec {
  preset: LightingPreset | 'neutral';
  /** Overall multiplier and black lift. */
  exposure: number;
  lift: number;
  /** 1 keeps colours; 0 is greyscale. */
  saturation: number;
  /** Per-channel gain (a diagonal colour matrix, after saturation). */
  tint: Rgb;
  /** > 0: S-curve strength; < 0: flatter. */
  contrast: number;
  /** Share of light that does not depend on direction. */
  ambient: number;
  key?: Light;
  fill?: Light;
  /** Darkening towards the corners (0..1). */
  vignette: number;
  /** Glow along the inside of the silhouette's edge (backlight). */
  rim?: { strength: number; colour: Rgb };
  /** Multiplies the figure only (silhouette against a bright ground). */
  figureExposure: number;
  /** Light glowing behind the figure. */
  glow?: { strength: number; radius: number; colour: Rgb };
  /** Light falling through blinds: stripes across the key light. */
  blinds?: { angle: number; period: number; depth: number };
}

const NEUTRAL: LightingSpec = {
  preset: 'neutral',
  exposure: 1,
  lift: 0,
  saturation: 1,
  tint: [1, 1, 1],
  contrast: 0,
  ambient: 1,
  vignette: 0,
  figureExposure: 1,
};

const PRESETS: Record<LightingPreset, Omit<LightingSpec, 'preset'>> = {
  natural: {
    ...NEUTRAL,
    saturation: 1.05,
    contrast: 0.12,
    ambient: 0.8,
    key: { dir: [-0.6, -0.8], hardness: 1.2, strength: 0.35, colour: [1, 0.98, 0.94] },
    vignette: 0.12,
  },
  dramatic_shadow: {
    ...NEUTRAL,
    saturation: 0.9,
    contrast: 0.45,
    ambient: 0.3,
    key: { dir: [-1, -0.2], hardness: 7, strength: 1.05, colour: [1, 0.96, 0.9] },
    vignette: 0.4,
  },
  noir_dramatic: {
    ...NEUTRAL,
    saturation: 0,
    tint: [0.97, 0.99, 1.04],
    contrast: 0.7,
    ambient: 0.22,
    key: { dir: [0.8, -0.6], hardness: 6, strength: 1.15, colour: [1, 1, 1] },
    vignette: 0.55,
    blinds: { angle: -0.5, period: 0.16, depth: 0.55 },
  },
  golden_hour: {
    ...NEUTRAL,
    tint: [1.12, 0.98, 0.76],
    lift: 0.02,
    saturation: 1.15,
    contrast: 0.15,
    ambient: 0.6,
    key: { dir: [-1, 0.15], hardness: 2, strength: 0.7, colour: [1, 0.78, 0.5] },
    rim: { strength: 0.3, colour: [1, 0.75, 0.4] },
    vignette: 0.22,
  },
  night: {
    ...NEUTRAL,
    exposure: 0.6,
    tint: [0.62, 0.76, 1.08],
    saturation: 0.6,
    contrast: 0.25,
    ambient: 0.55,
    key: { dir: [0.3, -1], hardness: 2.5, strength: 0.55, colour: [0.65, 0.78, 1] },
    vignette: 0.5,
  },
  high_key: {
    ...NEUTRAL,
    exposure: 1.18,
    lift: 0.14,
    saturation: 0.85,
    contrast: -0.35,
    ambient: 0.95,
    key: { dir: [0, -1], hardness: 1, strength: 0.15, colour: [1, 1, 1] },
  },
  low_key: {
    ...NEUTRAL,
    exposure: 0.62,
    saturation: 0.9,
    contrast: 0.5,
    ambient: 0.2,
    key: { dir: [-0.9, -0.45], hardness: 4, strength: 1.1, colour: [1, 0.95, 0.88] },
    vignette: 0.6,
  },
  backlit: {
    ...NEUTRAL,
    saturation: 0.9,
    contrast: 0.25,
    ambient: 1,
    figureExposure: 0.42,
    rim: { strength: 0.95, colour: [1, 0.93, 0.8] },
    glow: { strength: 0.75, radius: 0.55, colour: [1, 0.9, 0.72] },
    vignette: 0.25,
  },
  neon: {
    ...NEUTRAL,
    exposure: 0.85,
    saturation: 1.4,
    contrast: 0.35,
    ambient: 0.3,
    key: { dir: [-1, -0.1], hardness: 3, strength: 0.9, colour: [1, 0.2, 0.8] },
    fill: { dir: [1, 0.1], hardness: 3, strength: 0.9, colour: [0.1, 0.9, 1] },
    rim: { strength: 0.55, colour: [0.3, 0.95, 1] },
    vignette: 0.4,
  },
};

export function lightingFor(lighting: string | undefined): LightingSpec {
  const known = (IMAGE_LIGHTING_PRESETS as readonly string[]).includes(lighting ?? '');
  return known
    ? { ...PRESETS[lighting as LightingPreset], preset: lighting as LightingPreset }
    : NEUTRAL;
}

const LUMA = [0.299, 0.587, 0.114] as const;

/**
 * The colour matrix of the grade: saturation (mix with luma) then tint, times exposure. Row-major
 * 3×3 for `out = M · rgb` on channel-major pixels ([3, N]).
 */
export function gradeMatrix(spec: LightingSpec): number[] {
  const m: number[] = [];
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) {
      const sat = (1 - spec.saturation) * LUMA[c] + (r === c ? spec.saturation : 0);
      m.push(sat * spec.tint[r] * spec.exposure);
    }
  }
  return m;
}

/** Per-render constants of the grade, kept across bands. */
export interface LightingTensors {
  matrix: TfCore.Tensor2D;
}

export function lightingTensors(tf: Tf, spec: LightingSpec): LightingTensors {
  return { matrix: tf.tensor2d(gradeMatrix(spec), [3, 3]) };
}

/**
 * Grades channel-major colour `rgb` ([3, N], 0..1) at points (x, y) ([1, N]) given the figure's
 * silhouette distance `all` and mask `figure`. Call inside tidy.
 */
export function applyLighting(
  tf: Tf,
  spec: LightingSpec,
  consts: LightingTensors,
  rgb: TfCore.Tensor2D,
  p: {
    x: TfCore.Tensor2D;
    y: TfCore.Tensor2D;
    all: TfCore.Tensor2D;
    figure: TfCore.Tensor2D;
    centre: { x: number; y: number };
    pixel: number;
  },
): TfCore.Tensor2D {
  const colour = (c: Rgb) => tf.tensor2d([c[0], c[1], c[2]], [3, 1]);
  const directional = (light: Light) => {
    const [dx, dy] = light.dir;
    const len = Math.hypot(dx, dy) || 1;
    let field: TfCore.Tensor = tf.sigmoid(
      tf.mul(tf.add(tf.mul(p.x, dx / len), tf.mul(p.y, dy / len)), light.hardness),
    );
    if (light === spec.key && spec.blinds) {
      const { angle, period, depth } = spec.blinds;
      const phase = tf.mul(
        tf.add(tf.mul(p.x, Math.cos(angle)), tf.mul(p.y, Math.sin(angle))),
        1 / period,
      );
      const slat = tf.sigmoid(tf.mul(tf.sub(tf.abs(tf.sub(phase, tf.round(phase))), 0.25), 40));
      field = tf.mul(field, tf.sub(1, tf.mul(slat, depth)));
    }
    return tf.mul(tf.mul(field, light.strength), colour(light.colour));
  };

  // Light arriving at each pixel: ambient plus key and fill, coloured ([3, N]).
  let light: TfCore.Tensor = tf.fill([3, 1], spec.ambient);
  if (spec.key) light = tf.add(light, directional(spec.key));
  if (spec.fill) light = tf.add(light, directional(spec.fill));
  let out: TfCore.Tensor = tf.mul(rgb, light);

  if (spec.figureExposure !== 1) {
    out = tf.mul(out, tf.add(1, tf.mul(p.figure, spec.figureExposure - 1)));
  }
  if (spec.glow) {
    const { strength, radius, colour: c } = spec.glow;
    const d2 = tf.add(tf.square(tf.sub(p.x, p.centre.x)), tf.square(tf.sub(p.y, p.centre.y)));
    const glow = tf.mul(tf.exp(tf.mul(d2, -1 / (radius * radius))), tf.sub(1, p.figure));
    out = tf.add(out, tf.mul(tf.mul(glow, strength), colour(c)));
  }
  if (spec.rim) {
    // Inside the silhouette, within a few pixels of its edge.
    const width = Math.max(3 * p.pixel, 0.012);
    const rim = tf.mul(tf.clipByValue(tf.add(1, tf.mul(p.all, 1 / width)), 0, 1), p.figure);
    out = tf.add(out, tf.mul(tf.mul(rim, spec.rim.strength), colour(spec.rim.colour)));
  }

  out = tf.matMul(consts.matrix, out);
  if (spec.lift !== 0) out = tf.add(tf.mul(out, 1 - spec.lift), spec.lift);
  if (spec.vignette !== 0) {
    const r2 = tf.add(tf.square(p.x), tf.square(p.y));
    out = tf.mul(out, tf.clipByValue(tf.sub(1, tf.mul(r2, spec.vignette * 0.45)), 0, 1));
  }
  if (spec.contrast !== 0) {
    // Blend towards smoothstep: an S-curve around mid grey (negative: flatter).
    const c = tf.clipByValue(out, 0, 1);
    const smooth = tf.mul(tf.square(c), tf.sub(3, tf.mul(c, 2)));
    out = tf.add(c, tf.mul(tf.sub(smooth, c), spec.contrast));
  }
  return out as TfCore.Tensor2D;
}
