import type * as TfCore from '@tensorflow/tfjs-core';
import { IMAGE_POSE_PRESETS } from '@app/tasks';
import type { DescriptionTraits } from './description.embedding';
import type { SeededRandom } from './seeded.random';

type Tf = typeof TfCore;
type PosePreset = (typeof IMAGE_POSE_PRESETS)[number];

/** A segment with a radius; a circle when both ends meet. Image units (height spans -1..1). */
export interface Capsule {
  ax: number;
  ay: number;
  bx: number;
  by: number;
  r: number;
}

/** Regions drawn front to back: eyes over hat over skin, props and the outfit (body). */
export const FIGURE_GROUPS = ['eyes', 'hat', 'skin', 'prop', 'body'] as const;
export type FigureGroup = (typeof FIGURE_GROUPS)[number];

export interface FigureSpec {
  /** The pose preset drawn; 'neutral' when the request named none we know. */
  preset: PosePreset | 'neutral';
  groups: Record<FigureGroup, Capsule[]>;
  /** Hair: a circle around the head cut by a hairline (y above it is hair). */
  hair: { cx: number; cy: number; r: number; hairline: number };
  /** Ground shadow ellipse, absent when the feet are out of frame. */
  shadow?: { cx: number; cy: number; rx: number; ry: number };
  /** Where the figure's mass is, for lights that wrap around it. */
  centre: { x: number; y: number };
}

interface Skeleton {
  head: P;
  neck: P;
  chest: P;
  pelvis: P;
  shoulder: [P, P];
  elbow: [P, P];
  hand: [P, P];
  hip: [P, P];
  knee: [P, P];
  ankle: [P, P];
  toe: [P, P];
  /** Where the face looks, -1 (left) .. 1 (right). */
  face: number;
  seat?: Capsule[];
  /** Figure units to image units: scale and offset; portraits zoom on the head. */
  scale?: number;
  offsetY?: number;
}
type P = readonly [number, number];

const mirror = (l: P, r: P): [P, P] => [l, r];

// Joint positions in figure units (head top at about -0.85, soles at 0.9), front or 3/4 view.
const STANDING_RELAXED: Skeleton = {
  head: [0, -0.74],
  neck: [0, -0.62],
  chest: [0, -0.42],
  pelvis: [0, -0.02],
  shoulder: mirror([-0.15, -0.52], [0.15, -0.52]),
  elbow: mirror([-0.2, -0.25], [0.2, -0.25]),
  hand: mirror([-0.22, 0.02], [0.22, 0.02]),
  hip: mirror([-0.08, 0.04], [0.08, 0.04]),
  knee: mirror([-0.09, 0.44], [0.09, 0.44]),
  ankle: mirror([-0.1, 0.83], [0.1, 0.83]),
  toe: mirror([-0.15, 0.88], [0.15, 0.88]),
  face: 0,
};

const POSES: Record<PosePreset, Skeleton> = {
  standing_relaxed: STANDING_RELAXED,
  standing_confident: {
    ...STANDING_RELAXED,
    chest: [0, -0.43],
    shoulder: mirror([-0.16, -0.53], [0.16, -0.53]),
    // Hands on hips, elbows out.
    elbow: mirror([-0.31, -0.27], [0.31, -0.27]),
    hand: mirror([-0.14, -0.05], [0.14, -0.05]),
    knee: mirror([-0.14, 0.44], [0.14, 0.44]),
    ankle: mirror([-0.2, 0.83], [0.2, 0.83]),
    toe: mirror([-0.27, 0.88], [0.27, 0.88]),
  },
  walking: {
    head: [0.03, -0.74],
    neck: [0.02, -0.62],
    chest: [0.01, -0.42],
    pelvis: [0, -0.02],
    shoulder: mirror([-0.07, -0.52], [0.09, -0.52]),
    elbow: mirror([-0.15, -0.27], [0.17, -0.28]),
    hand: mirror([-0.21, -0.05], [0.27, -0.1]),
    hip: mirror([-0.03, 0.04], [0.04, 0.04]),
    knee: mirror([-0.1, 0.43], [0.15, 0.42]),
    ankle: mirror([-0.22, 0.8], [0.2, 0.82]),
    toe: mirror([-0.26, 0.87], [0.28, 0.86]),
    face: 0.6,
  },
  running: {
    head: [0.13, -0.7],
    neck: [0.1, -0.59],
    chest: [0.06, -0.4],
    pelvis: [0, -0.02],
    shoulder: mirror([-0.02, -0.5], [0.12, -0.5]),
    elbow: mirror([-0.17, -0.26], [0.27, -0.33]),
    hand: mirror([-0.3, -0.12], [0.3, -0.52]),
    hip: mirror([-0.03, 0.04], [0.04, 0.04]),
    knee: mirror([-0.16, 0.4], [0.24, 0.28]),
    ankle: mirror([-0.36, 0.68], [0.18, 0.62]),
    toe: mirror([-0.42, 0.74], [0.26, 0.66]),
    face: 0.8,
  },
  sitting: {
    head: [0, -0.42],
    neck: [0, -0.3],
    chest: [0, -0.1],
    pelvis: [0, 0.26],
    shoulder: mirror([-0.15, -0.2], [0.15, -0.2]),
    elbow: mirror([-0.2, 0.06], [0.2, 0.06]),
    hand: mirror([-0.13, 0.3], [0.13, 0.3]),
    hip: mirror([-0.09, 0.3], [0.09, 0.3]),
    // Thighs come towards the viewer: short in the picture.
    knee: mirror([-0.12, 0.4], [0.12, 0.4]),
    ankle: mirror([-0.13, 0.83], [0.13, 0.83]),
    toe: mirror([-0.18, 0.88], [0.18, 0.88]),
    face: 0,
    seat: [
      { ax: -0.27, ay: 0.43, bx: 0.27, by: 0.43, r: 0.05 },
      { ax: -0.24, ay: 0.45, bx: -0.25, by: 0.88, r: 0.022 },
      { ax: 0.24, ay: 0.45, bx: 0.25, by: 0.88, r: 0.022 },
    ],
  },
  portrait: { ...STANDING_RELAXED, scale: 2.1, offsetY: 1.05 },
  action: {
    head: [-0.03, -0.7],
    neck: [-0.02, -0.58],
    chest: [0, -0.38],
    pelvis: [0.02, 0.02],
    shoulder: mirror([-0.14, -0.48], [0.14, -0.48]),
    elbow: mirror([-0.3, -0.37], [0.27, -0.66]),
    hand: mirror([-0.45, -0.41], [0.33, -0.87]),
    hip: mirror([-0.06, 0.07], [0.1, 0.07]),
    knee: mirror([-0.26, 0.37], [0.21, 0.43]),
    ankle: mirror([-0.33, 0.8], [0.36, 0.8]),
    toe: mirror([-0.41, 0.85], [0.44, 0.85]),
    face: -0.4,
  },
};

function isPreset(pose: string | undefined): pose is PosePreset {
  return pose !== undefined && (IMAGE_POSE_PRESETS as readonly string[]).includes(pose);
}

/**
 * The character's silhouette as capsules, from the pose preset (unknown poses stand relaxed),
 * the build drawn from the seed, and what the description says (hat, long coat).
 */
export function buildFigure(
  pose: string | undefined,
  traits: DescriptionTraits,
  rng: SeededRandom,
  aspect: number,
): FigureSpec {
  const preset = isPreset(pose) ? pose : 'neutral';
  const sk = POSES[preset === 'neutral' ? 'standing_relaxed' : preset];
  const headR = 0.105 * rng.range(0.92, 1.1);
  const shoulders = rng.range(0.86, 1.16);
  const girth = rng.range(0.85, 1.2);
  const limbs = rng.range(0.9, 1.12);

  // A figure is about 0.55 units wide: shrink it in narrow images so it stays in frame.
  const fit = Math.min(1, aspect / 0.62);
  const s = (sk.scale ?? 1) * fit;
  const oy = sk.offsetY ?? 0.02;
  const X = (p: P, widen = 1) => (p[0] - sk.pelvis[0]) * widen * s + sk.pelvis[0] * s;
  const Y = (p: P) => p[1] * s + oy;
  const cap = (a: P, b: P, r: number, widen = 1): Capsule => ({
    ax: X(a, widen),
    ay: Y(a),
    bx: X(b, widen),
    by: Y(b),
    r: r * s,
  });
  const dot = (p: P, r: number) => cap(p, p, r);
  const lr = [0, 1] as const;

  const skin: Capsule[] = [
    dot(sk.head, headR),
    cap(sk.neck, [sk.head[0], sk.head[1] + headR * 0.5], 0.042 * girth),
    ...lr.map((i) => dot(sk.hand[i], 0.036 * limbs)),
  ];
  const body: Capsule[] = [
    cap(sk.chest, sk.pelvis, 0.115 * girth),
    cap(sk.shoulder[0], sk.shoulder[1], 0.062 * girth, shoulders),
    cap(sk.hip[0], sk.hip[1], 0.085 * girth),
    ...lr.flatMap((i) => [
      cap(sk.shoulder[i], sk.elbow[i], 0.046 * limbs, shoulders),
      cap(sk.elbow[i], sk.hand[i], 0.038 * limbs),
      cap(sk.hip[i], sk.knee[i], 0.068 * girth),
      cap(sk.knee[i], sk.ankle[i], 0.05 * limbs),
      cap(sk.ankle[i], sk.toe[i], 0.034),
    ]),
  ];
  if (traits.longCoat) {
    const hem = (i: 0 | 1): P => [sk.knee[i][0] * 1.25, sk.knee[i][1] + 0.1];
    body.push(
      cap([sk.pelvis[0], sk.pelvis[1] - 0.12], hem(0), 0.1 * girth),
      cap([sk.pelvis[0], sk.pelvis[1] - 0.12], hem(1), 0.1 * girth),
      cap(sk.pelvis, [(hem(0)[0] + hem(1)[0]) / 2, hem(0)[1] - 0.05], 0.12 * girth),
    );
  }
  const hat: Capsule[] = traits.hat
    ? [
        cap(
          [sk.head[0] - 0.17, sk.head[1] - headR * 0.6],
          [sk.head[0] + 0.17, sk.head[1] - headR * 0.6],
          0.02,
        ),
        cap(
          [sk.head[0] - 0.05, sk.head[1] - headR * 1.05],
          [sk.head[0] + 0.05, sk.head[1] - headR * 1.05],
          0.065,
        ),
      ]
    : [];
  const eyeY = sk.head[1] + headR * 0.1;
  const eyeX = sk.head[0] + sk.face * headR * 0.45;
  const eyes: Capsule[] = (sk.face > 0.5 || sk.face < -0.5 ? [0.25] : [-0.36, 0.36]).map((dx) =>
    dot([eyeX + dx * headR * Math.sign(sk.face || 1), eyeY], headR * 0.1),
  );
  const prop: Capsule[] = (sk.seat ?? []).map((c) => cap([c.ax, c.ay], [c.bx, c.by], c.r));

  const feetY = Math.max(Y(sk.toe[0]), Y(sk.toe[1]), ...prop.map((c) => Math.max(c.ay, c.by)));
  return {
    preset,
    groups: { eyes, hat, skin, prop, body },
    hair: {
      cx: X(sk.head) + sk.face * headR * s * -0.1,
      cy: Y(sk.head) - headR * s * 0.06,
      r: headR * s * 1.1,
      hairline: Y(sk.head) - headR * s * 0.3,
    },
    shadow:
      feetY < 0.98
        ? { cx: X(sk.pelvis), cy: feetY + 0.02 * s, rx: 0.33 * s, ry: 0.05 * s }
        : undefined,
    centre: { x: X(sk.chest), y: Y(sk.chest) },
  };
}

/** Signed distances ([1, N]; negative inside) and soft masks of the figure over N points. */
export interface FigureFields {
  /** Smooth union of every part: the silhouette. */
  all: TfCore.Tensor2D;
  group: Record<FigureGroup, TfCore.Tensor2D>;
  hair: TfCore.Tensor2D;
  /** Ground shadow strength 0..1. */
  shadow: TfCore.Tensor2D;
}

/** Beyond this distance nothing reads the field (features clip at 1/6): far parts are skipped. */
const FAR = 0.25;
const SMOOTH_UNION = 0.012;

/**
 * Evaluates the figure's distance fields at points (x, y) ([1, N] each) lying between rows
 * `top` and `bottom` (image units). Capsules away from those rows are culled, so a band costs
 * only the parts that cross it. Call inside tidy.
 */
export function figureFields(
  tf: Tf,
  spec: FigureSpec,
  x: TfCore.Tensor2D,
  y: TfCore.Tensor2D,
  top: number,
  bottom: number,
): FigureFields {
  // Its own tidy: the [capsules, N] intermediates are the largest tensors of a band.
  return tf.tidy(
    () => fields(tf, spec, x, y, top, bottom) as unknown as TfCore.TensorContainerObject,
  ) as unknown as FigureFields;
}

function fields(
  tf: Tf,
  spec: FigureSpec,
  x: TfCore.Tensor2D,
  y: TfCore.Tensor2D,
  top: number,
  bottom: number,
): FigureFields {
  const n = x.shape[1];
  const far = () => tf.fill<TfCore.Rank.R2>([1, n], FAR);
  const rows: Capsule[] = [];
  const ranges = {} as Record<FigureGroup, [number, number]>;
  for (const g of FIGURE_GROUPS) {
    const start = rows.length;
    for (const c of spec.groups[g]) {
      if (Math.max(c.ay, c.by) + c.r + FAR >= top && Math.min(c.ay, c.by) - c.r - FAR <= bottom)
        rows.push(c);
    }
    ranges[g] = [start, rows.length];
  }

  let distances: TfCore.Tensor2D | undefined;
  if (rows.length > 0) {
    const col = (f: (c: Capsule) => number) =>
      tf.tensor2d(Float32Array.from(rows, f), [rows.length, 1]);
    const bax = col((c) => c.bx - c.ax);
    const bay = col((c) => c.by - c.ay);
    const invLen2 = col((c) => {
      const l2 = (c.bx - c.ax) ** 2 + (c.by - c.ay) ** 2;
      return l2 > 0 ? 1 / l2 : 0;
    });
    const pax = tf.sub(
      x,
      col((c) => c.ax),
    );
    const pay = tf.sub(
      y,
      col((c) => c.ay),
    );
    // Closest point on each segment, then distance to it minus the radius.
    const h = tf.clipByValue(tf.mul(tf.add(tf.mul(pax, bax), tf.mul(pay, bay)), invLen2), 0, 1);
    const dx = tf.sub(pax, tf.mul(bax, h));
    const dy = tf.sub(pay, tf.mul(bay, h));
    distances = tf.sub<TfCore.Tensor2D>(
      tf.sqrt(tf.add(tf.square(dx), tf.square(dy))),
      col((c) => c.r),
    );
  }

  const group = {} as Record<FigureGroup, TfCore.Tensor2D>;
  for (const g of FIGURE_GROUPS) {
    const [start, end] = ranges[g];
    group[g] =
      distances && end > start
        ? tf.min(tf.slice(distances, [start, 0], [end - start, n]), 0, true)
        : far();
  }

  // Smooth union (log-sum-exp soft minimum) rounds the joints like cloth over limbs.
  let all = far();
  if (distances) {
    const m = tf.min(distances, 0, true);
    const sum = tf.sum(tf.exp(tf.mul(tf.sub(m, distances), 1 / SMOOTH_UNION)), 0, true);
    all = tf.minimum(tf.sub(m, tf.mul(tf.log(sum), SMOOTH_UNION)), FAR);
  }

  const { cx, cy, r, hairline } = spec.hair;
  const hair = tf.maximum(
    tf.sub(tf.sqrt(tf.add(tf.square(tf.sub(x, cx)), tf.square(tf.sub(y, cy)))), r),
    tf.sub(y, hairline),
  );

  let shadow: TfCore.Tensor = tf.zeros([1, n]);
  if (spec.shadow) {
    const s = spec.shadow;
    const q = tf.sqrt(
      tf.add(
        tf.square(tf.mul(tf.sub(x, s.cx), 1 / s.rx)),
        tf.square(tf.mul(tf.sub(y, s.cy), 1 / s.ry)),
      ),
    );
    // Soft-edged ellipse: 1 at the centre, fading out past its rim.
    shadow = tf.sigmoid(tf.mul(tf.sub(q, 0.85), -6));
  }

  return {
    all: all,
    group,
    hair: hair as TfCore.Tensor2D,
    shadow: shadow as TfCore.Tensor2D,
  };
}
