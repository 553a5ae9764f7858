import sharp from 'sharp';
import {
  buildFigure,
  type Capsule,
  type FigureSpec,
} from '../../src/processors/generate-image/figure.silhouette';
import { SeededRandom } from '../../src/processors/generate-image/seeded.random';

/** A person drawn for segmentation tests: its pixels and the exact shape it covers. */
export interface PersonFigure {
  width: number;
  height: number;
  /** RGB bytes, row-major. */
  rgb: Buffer;
  /** 1 where the figure is (its silhouette and hair, no prop), else 0. */
  truth: Uint8Array;
  /** Share of pixels inside the figure. */
  coverage: number;
}

export interface PersonFigureOptions {
  /** A pose preset of generate_image (figure.silhouette.ts); standing_relaxed by default. */
  pose?: string;
  /** Flat background colour, bytes. */
  background?: [number, number, number];
  seed?: number;
}

const OUTFIT = [50, 64, 115];
const SKIN = [222, 171, 140];
const HAIR = [77, 46, 26];
const EYES = [25, 25, 25];

/**
 * The generate_image figure (capsule skeleton of a pose preset, head, hair, hands) drawn flat and
 * shaded like a lit cylinder over a flat background: both networks see it as a person (IoU > 0.9
 * with its own shape). Plain loops, no tfjs: e2e specs use it too.
 */
export function renderPersonFigure(
  width: number,
  height: number,
  opts: PersonFigureOptions = {},
): PersonFigure {
  const spec = buildFigure(
    opts.pose ?? 'standing_relaxed',
    { colours: [], hat: false, longCoat: false },
    new SeededRandom(opts.seed ?? 7, 3),
    width / height,
  );
  const bg = opts.background ?? [140, 199, 140];
  const pixel = 2 / height;
  const rgb = Buffer.alloc(width * height * 3);
  const truth = new Uint8Array(width * height);
  const { skin, body, eyes, hat } = spec.groups;
  const parts = [...skin, ...body, ...hat];
  const distances = new Float64Array(parts.length);
  const colour = [0, 0, 0];
  // Pixels outside the parts' bounding box (plus the edge margin) are plain background: fill
  // them without evaluating every capsule's distance.
  // The smooth union reaches up to k·ln(n) beyond the nearest capsule (never less far).
  const margin = 8 * pixel;
  const softBound = 0.012 * Math.log(Math.max(1, parts.length));
  const box = boundingBox([...parts, ...eyes], spec, margin + softBound);
  let inside = 0;
  for (let row = 0; row < height; row++) {
    const y = (row + 0.5) * pixel - 1;
    for (let col = 0; col < width; col++) {
      const x = (col + 0.5 - width / 2) * pixel;
      if (
        x < box.x0 ||
        x > box.x1 ||
        y < box.y0 ||
        y > box.y1 ||
        (nearest(parts, x, y) - softBound > margin && hairDistance(spec, x, y) > margin)
      ) {
        // Far outside: plain background (the common case, kept cheap).
        const i = (row * width + col) * 3;
        rgb[i] = bg[0];
        rgb[i + 1] = bg[1];
        rgb[i + 2] = bg[2];
        continue;
      }
      const dSkin = nearest(skin, x, y);
      const dHair = hairDistance(spec, x, y);
      // Smooth union of every part (as generate_image draws it): joints round like cloth.
      const all = Math.min(smoothUnion(parts, distances, x, y), dHair);
      const i = (row * width + col) * 3;
      if (all > 8 * pixel) {
        // Beyond the anti-aliased edge: plain background.
        rgb[i] = bg[0];
        rgb[i + 1] = bg[1];
        rgb[i + 2] = bg[2];
        continue;
      }
      // Anti-aliased edges, a little under a pixel wide.
      const cover = (d: number) => 1 / (1 + Math.exp(d / (0.6 * pixel)));
      const skinCover = cover(dSkin);
      const hairCover = cover(dHair);
      const eyeCover = cover(nearest(eyes, x, y));
      const shade = 0.6 + 0.4 * Math.min(1, Math.max(0, -all / 0.04));
      const a = cover(all);
      for (let c = 0; c < 3; c++) {
        let v = OUTFIT[c] + (SKIN[c] - OUTFIT[c]) * skinCover;
        v += (HAIR[c] - v) * hairCover;
        v += (EYES[c] - v) * eyeCover;
        colour[c] = v * shade;
        rgb[i + c] = Math.round(bg[c] + (colour[c] - bg[c]) * a);
      }
      if (all <= 0) {
        truth[row * width + col] = 1;
        inside++;
      }
    }
  }
  return { width, height, rgb, truth, coverage: inside / truth.length };
}

/** The figure as an encoded image (png or jpeg) for HTTP inputs. */
export function encodeFigure(figure: PersonFigure, format: 'png' | 'jpeg'): Promise<Buffer> {
  const image = sharp(figure.rgb, {
    raw: { width: figure.width, height: figure.height, channels: 3 },
  });
  return (format === 'png' ? image.png() : image.jpeg({ quality: 95 })).toBuffer();
}

/** Intersection over union of `alpha > threshold` with the figure's shape. */
export function maskIoU(alpha: ArrayLike<number>, truth: Uint8Array, threshold = 127): number {
  let both = 0;
  let either = 0;
  for (let i = 0; i < truth.length; i++) {
    const p = alpha[i] > threshold;
    const t = truth[i] === 1;
    if (p && t) both++;
    if (p || t) either++;
  }
  return either === 0 ? 1 : both / either;
}

function boundingBox(capsules: readonly Capsule[], spec: FigureSpec, margin: number) {
  const { cx, cy, r } = spec.hair;
  const box = { x0: cx - r, x1: cx + r, y0: cy - r, y1: cy + r };
  for (const c of capsules) {
    box.x0 = Math.min(box.x0, c.ax - c.r, c.bx - c.r);
    box.x1 = Math.max(box.x1, c.ax + c.r, c.bx + c.r);
    box.y0 = Math.min(box.y0, c.ay - c.r, c.by - c.r);
    box.y1 = Math.max(box.y1, c.ay + c.r, c.by + c.r);
  }
  return { x0: box.x0 - margin, x1: box.x1 + margin, y0: box.y0 - margin, y1: box.y1 + margin };
}

function nearest(capsules: readonly Capsule[], x: number, y: number): number {
  let best = Infinity;
  for (const c of capsules) best = Math.min(best, capsuleDistance(c, x, y));
  return best;
}

/** Signed distance to a capsule (negative inside). */
function capsuleDistance(c: Capsule, x: number, y: number): number {
  const bax = c.bx - c.ax;
  const bay = c.by - c.ay;
  const l2 = bax * bax + bay * bay;
  const pax = x - c.ax;
  const pay = y - c.ay;
  const h = l2 > 0 ? Math.min(1, Math.max(0, (pax * bax + pay * bay) / l2)) : 0;
  const dx = pax - bax * h;
  const dy = pay - bay * h;
  return Math.sqrt(dx * dx + dy * dy) - c.r;
}

/** Log-sum-exp soft minimum of the capsules' distances (figure.silhouette.ts's SMOOTH_UNION). */
function smoothUnion(
  capsules: readonly Capsule[],
  distances: Float64Array,
  x: number,
  y: number,
): number {
  const k = 0.012;
  let m = Infinity;
  for (let j = 0; j < capsules.length; j++) {
    distances[j] = capsuleDistance(capsules[j], x, y);
    m = Math.min(m, distances[j]);
  }
  let sum = 0;
  for (let j = 0; j < capsules.length; j++) sum += Math.exp((m - distances[j]) / k);
  return m - k * Math.log(sum);
}

function hairDistance(spec: FigureSpec, x: number, y: number): number {
  const { cx, cy, r, hairline } = spec.hair;
  return Math.max(Math.hypot(x - cx, y - cy) - r, y - hairline);
}
