import { synthesizeAmbience } from './ambience.synth';

/** Longer beds are made of segments this long, crossfaded, with the event loop free between. */
const AMBIENCE_SEGMENT_SECONDS = 30;
const AMBIENCE_CROSSFADE_SECONDS = 1;

/**
 * `length` samples of ambience at `sr`. Past 30 s it is built from independently
 * seeded 30 s segments joined by 1 s equal-power crossfades: synthesizing minutes in one call
 * would block the event loop for seconds, and a stationary bed hides the seams.
 */
export async function ambienceBed(
  name: string,
  length: number,
  sr: number,
  seed: number,
  signal?: AbortSignal,
): Promise<Float32Array | null> {
  const segment = AMBIENCE_SEGMENT_SECONDS * sr;
  if (length <= segment) return synthesizeAmbience(name, length / sr, sr, seed);
  const fade = AMBIENCE_CROSSFADE_SECONDS * sr;
  const out = new Float32Array(length);
  for (let start = 0, k = 0; start < length; start += segment - fade, k++) {
    if (signal?.aborted) throw signal.reason;
    const size = Math.min(segment, length - start);
    const part = synthesizeAmbience(name, size / sr, sr, seed + k);
    if (!part) return null;
    for (let i = 0; i < part.length; i++) {
      // Equal power: sin²+cos² = 1 keeps the level of uncorrelated noise steady across the seam.
      const wIn = k > 0 && i < fade ? Math.sin((Math.PI / 2) * (i / fade)) : 1;
      const wOut =
        start + size < length && i >= part.length - fade
          ? Math.cos((Math.PI / 2) * ((i - (part.length - fade)) / fade))
          : 1;
      out[start + i] += part[i] * wIn * wOut;
    }
    if (start + size >= length) break;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return out;
}
