import { AMBIENCE_NAMES, synthesizeAmbience } from '../../media/audio/ambience.synth';

/** The audio cues of a request, split into ambiences we synthesize and cues we do not know. */
export interface AmbiencePlan {
  /** Known ambience names, each once, in request order. */
  ambiences: string[];
  /** Cues as the request wrote them that name no ambience. */
  ignored: string[];
}

/** "Rain ambience", "rain-ambience" and "rain" all name `rain_ambience`. */
function candidates(cue: string): string[] {
  const name = cue
    .trim()
    .toLowerCase()
    .replace(/[\s-]+/g, '_');
  return [name, `${name}_ambience`, name.replace(/_(ambience|sounds?|sfx)$/, '')];
}

export function planAmbience(cues: readonly string[] | undefined): AmbiencePlan {
  const ambiences: string[] = [];
  const ignored: string[] = [];
  for (const cue of cues ?? []) {
    const known = candidates(cue).find((c) => AMBIENCE_NAMES.includes(c));
    if (!known) ignored.push(cue);
    else if (!ambiences.includes(known)) ambiences.push(known);
  }
  return { ambiences, ignored };
}

/** Peak level of the mix; leaves headroom for AAC's overshoot. */
const MAX_PEAK = 0.9;

/**
 * The named ambiences layered into one mono bed of `seconds`: each keeps its natural loudness
 * relative to the others, the sum is scaled by 1/√n (uncorrelated beds add in power) and brought
 * under MAX_PEAK.
 */
export function mixAmbience(
  names: readonly string[],
  seconds: number,
  sampleRate: number,
  seed: number,
): Float32Array {
  const length = Math.round(seconds * sampleRate);
  const mix = new Float32Array(length);
  const gain = 1 / Math.sqrt(Math.max(1, names.length));
  names.forEach((name, i) => {
    const bed = synthesizeAmbience(name, seconds, sampleRate, (seed + i * 7919) >>> 0);
    if (!bed) throw new Error(`no ambience generator for ${name}`);
    const n = Math.min(length, bed.length);
    for (let s = 0; s < n; s++) mix[s] += bed[s] * gain;
  });
  let peak = 0;
  for (let s = 0; s < length; s++) peak = Math.max(peak, Math.abs(mix[s]));
  if (peak > MAX_PEAK) {
    const scale = MAX_PEAK / peak;
    for (let s = 0; s < length; s++) mix[s] *= scale;
  }
  return mix;
}
