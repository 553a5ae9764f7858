import type { AnimationKeyframe, Easing } from '@app/tasks';
import type { LayerPlacement } from '../../media/animation/layer.compositor';

export function ease(easing: Easing, u: number): number {
  const t = Math.min(1, Math.max(0, u));
  switch (easing) {
    case 'linear':
      return t;
    case 'ease_in':
      return t * t * t;
    case 'ease_out':
      return 1 - (1 - t) ** 3;
    case 'ease_in_out':
      return t < 0.5 ? 4 * t * t * t : 1 - (-2 * t + 2) ** 3 / 2;
  }
}

interface Key extends LayerPlacement {
  time: number;
}

/**
 * A layer's keyframes as a function of time. Keyframes are sorted by time; a property a keyframe
 * leaves out keeps the previous keyframe's value (the first starts from `start`). Before the
 * first keyframe the layer holds it, after the last it holds that one.
 */
export class KeyframeTrack {
  private readonly keys: Key[];

  constructor(
    keyframes: readonly AnimationKeyframe[],
    private readonly easing: Easing,
    start: LayerPlacement,
  ) {
    const sorted = [...keyframes].sort((a, b) => a.time - b.time);
    let previous: LayerPlacement = start;
    this.keys = sorted.map((k) => {
      const key: Key = {
        time: k.time,
        x: k.x ?? previous.x,
        y: k.y ?? previous.y,
        scale: k.scale ?? previous.scale,
        rotation: k.rotation ?? previous.rotation,
        opacity: k.opacity ?? previous.opacity,
      };
      previous = key;
      return key;
    });
  }

  /** The largest scale the layer ever has: how much of its image is worth decoding. */
  get maxScale(): number {
    return Math.max(...this.keys.map((k) => k.scale));
  }

  at(time: number): LayerPlacement {
    const keys = this.keys;
    const last = keys.length - 1;
    if (time <= keys[0].time) return place(keys[0]);
    if (time >= keys[last].time) return place(keys[last]);
    let i = 0;
    while (keys[i + 1].time <= time) i++;
    const a = keys[i];
    const b = keys[i + 1];
    const span = b.time - a.time;
    const u = span > 0 ? ease(this.easing, (time - a.time) / span) : 1;
    const lerp = (p: number, q: number) => p + (q - p) * u;
    return {
      x: lerp(a.x, b.x),
      y: lerp(a.y, b.y),
      scale: lerp(a.scale, b.scale),
      // Degrees interpolate as numbers: 0 → 720 spins twice.
      rotation: lerp(a.rotation, b.rotation),
      opacity: lerp(a.opacity, b.opacity),
    };
  }
}

function place(k: Key): LayerPlacement {
  return { x: k.x, y: k.y, scale: k.scale, rotation: k.rotation, opacity: k.opacity };
}
