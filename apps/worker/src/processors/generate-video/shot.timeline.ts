/** Which storyboard shot a frame shows, and the crossfade into the next one. */
export interface ShotAt {
  shot: number;
  /** Set during a transition: the incoming shot's share (0..1, eased). */
  next?: { shot: number; weight: number };
}

/** Longest crossfade between two shots, seconds. */
const MAX_TRANSITION = 0.75;
/** A crossfade takes at most this share of a shot. */
const TRANSITION_SHARE = 0.4;

/**
 * The storyboard frames as equal shots over the clip, with a crossfade centred on each cut.
 */
export class ShotTimeline {
  readonly shotSeconds: number;
  readonly transitionSeconds: number;

  constructor(
    readonly shots: number,
    readonly seconds: number,
  ) {
    this.shotSeconds = seconds / shots;
    this.transitionSeconds =
      shots > 1 ? Math.min(MAX_TRANSITION, this.shotSeconds * TRANSITION_SHARE) : 0;
  }

  at(t: number): ShotAt {
    const { shots, shotSeconds, transitionSeconds: fade } = this;
    const nearestCut = Math.round(t / shotSeconds);
    if (fade > 0 && nearestCut >= 1 && nearestCut < shots) {
      const start = nearestCut * shotSeconds - fade / 2;
      const u = (t - start) / fade;
      if (u >= 0 && u < 1) {
        const weight = u * u * (3 - 2 * u);
        return { shot: nearestCut - 1, next: { shot: nearestCut, weight } };
      }
    }
    return { shot: Math.min(shots - 1, Math.max(0, Math.floor(t / shotSeconds))) };
  }
}
