import {
  DspRandom,
  addGlide,
  addResonator,
  biquad,
  brownNoise,
  fadeEdges,
  mixInto,
  modulatedBandpass,
  multiplyInto,
  peak,
  pinkNoise,
  rms,
  smoothRandom,
  whiteNoise,
} from './audio.dsp';

// Hot loops read Math through a module binding: a global lookup per sample is slow inside
// vm contexts (jest), and the binding costs nothing elsewhere.
const M = Math;

type Generator = (length: number, sampleRate: number, seed: number) => Float32Array;

/**
 * Natural loudness of each bed (RMS): room tone is meant to be barely there, rain fills the
 * room. A mixer scales the bed as a whole and keeps these relations.
 */
const TARGET_RMS: Record<string, number> = {
  rain_ambience: 0.12,
  city_night: 0.1,
  wind: 0.12,
  crowd: 0.1,
  room_tone: 0.035,
  forest: 0.08,
  footsteps: 0.09,
};

const GENERATORS: Record<string, Generator> = {
  rain_ambience: rain,
  city_night: cityNight,
  wind,
  crowd,
  room_tone: roomTone,
  forest,
  footsteps,
};

export const AMBIENCE_NAMES: readonly string[] = Object.freeze(Object.keys(GENERATORS));

/**
 * Synthesizes `seconds` of a named ambience as mono float PCM in −1..1 (RMS per TARGET_RMS,
 * peaks ≤ 0.95, 20 ms fades at the edges). Deterministic: the same name, length, rate and seed
 * give the same samples. Returns null for an unknown name.
 */
export function synthesizeAmbience(
  name: string,
  seconds: number,
  sampleRate: number,
  seed = 0,
): Float32Array | null {
  const generator = Object.prototype.hasOwnProperty.call(GENERATORS, name)
    ? GENERATORS[name]
    : undefined;
  if (!generator) return null;
  if (!Number.isFinite(seconds) || seconds < 0)
    throw new RangeError(`seconds must be ≥ 0, got ${seconds}`);
  if (!Number.isFinite(sampleRate) || sampleRate < 8000) {
    throw new RangeError(`sampleRate must be ≥ 8000, got ${sampleRate}`);
  }
  const length = M.round(seconds * sampleRate);
  if (length === 0) return new Float32Array(0);
  const out = generator(length, sampleRate, seed | 0);
  normalize(out, TARGET_RMS[name], 0.95);
  fadeEdges(out, M.round(0.02 * sampleRate));
  return out;
}

function normalize(x: Float32Array, targetRms: number, maxPeak: number): void {
  const level = rms(x);
  if (level === 0) return;
  let gain = targetRms / level;
  const p = peak(x) * gain;
  // Sparse beds (footsteps) have high crest factors: the peak, not the RMS, sets their gain.
  if (p > maxPeak) gain *= maxPeak / p;
  for (let i = 0; i < x.length; i++) x[i] *= gain;
}

/** Hiss of distant rain, a low wash on surfaces, and individual drops (Minnaert bubbles, plinks). */
function rain(length: number, sr: number, seed: number): Float32Array {
  const hiss = biquad(
    biquad(whiteNoise(length, new DspRandom(seed, 1)), 'highpass', 900, 0.7, sr),
    'lowpass',
    9000,
    0.7,
    sr,
  );
  const swell = smoothRandom(length, 0.3, sr, new DspRandom(seed, 2));
  for (let i = 0; i < length; i++) hiss[i] *= 0.75 + 0.5 * swell[i];
  const wash = biquad(pinkNoise(length, new DspRandom(seed, 3)), 'lowpass', 700, 0.7, sr);
  const out = new Float32Array(length);
  mixInto(out, hiss, 0.5);
  mixInto(out, wash, 0.6);

  const rng = new DspRandom(seed, 4);
  const drops = new Float32Array(length);
  for (let t = rng.exponential(70); t * sr < length; t += rng.exponential(70)) {
    const start = M.floor(t * sr);
    // Power-law amplitudes: many faint drops, a few close ones.
    const amplitude = 0.04 * M.pow(rng.next(), 3) + 0.004;
    if (rng.next() < 0.25) {
      // A bubble rings with a rising pitch (Minnaert resonance of a shrinking bubble).
      const f = rng.range(1500, 4000);
      addGlide(drops, start, rng.range(0.008, 0.03), f, f * rng.range(1.2, 1.6), amplitude * 6, sr);
    } else {
      addResonator(drops, start, rng.range(2000, 7000), rng.range(0.001, 0.004), amplitude, sr);
    }
  }
  mixInto(out, drops, 1);
  return out;
}

/** Distant traffic rumble with cars passing by, mains hum, and now and then a far siren. */
function cityNight(length: number, sr: number, seed: number): Float32Array {
  const seconds = length / sr;
  const rumble = biquad(brownNoise(length, new DspRandom(seed, 1)), 'lowpass', 180, 0.7, sr);
  const out = new Float32Array(length);
  mixInto(out, rumble, 0.5);

  // Each passing car: a bell-shaped swell whose noise brightens as it comes close.
  const rng = new DspRandom(seed, 2);
  const carEnvelope = new Float32Array(length);
  for (let t = rng.range(-3, 2); t < seconds + 3; t += rng.range(2.5, 9)) {
    const centre = t * sr;
    const width = rng.range(1.2, 3) * sr;
    const level = rng.range(0.3, 1);
    const from = M.max(0, M.floor(centre - 3 * width));
    const to = M.min(length, M.ceil(centre + 3 * width));
    for (let i = from; i < to; i++) {
      const d = (i - centre) / width;
      carEnvelope[i] += level * M.exp(-d * d);
    }
  }
  const cutoff = new Float32Array(length);
  for (let i = 0; i < length; i++) cutoff[i] = 250 + 900 * M.min(1, carEnvelope[i]);
  const tyres = modulatedBandpass(pinkNoise(length, new DspRandom(seed, 3)), cutoff, 0.8, sr);
  multiplyInto(tyres, carEnvelope);
  mixInto(out, tyres, 0.9);

  // Mains hum with its odd harmonics, very low in the bed.
  const humBase = rng.next() < 0.5 ? 50 : 60;
  for (let i = 0; i < length; i++) {
    const w = (2 * M.PI * humBase * i) / sr;
    out[i] += 0.01 * M.sin(w) + 0.005 * M.sin(3 * w) + 0.0025 * M.sin(5 * w);
  }

  // An occasional distant siren, a slow two-tone wail, filtered by distance.
  const siren = new Float32Array(length);
  for (let t = rng.range(2, 20); t < seconds - 4; t += rng.range(15, 40)) {
    const start = M.floor(t * sr);
    const cycles = 2 + M.floor(rng.next() * 3);
    for (let c = 0; c < cycles; c++) {
      const s = start + M.floor(c * 1.6 * sr);
      if (s >= length) break;
      addGlide(siren, s, 0.8, 650, 950, 0.05, sr);
      addGlide(siren, M.min(length - 1, s + M.floor(0.8 * sr)), 0.8, 950, 650, 0.05, sr);
    }
  }
  mixInto(out, biquad(siren, 'lowpass', 1200, 0.7, sr), 1);
  return out;
}

/** Gusts: noise through a band whose centre and level follow a slow gust curve, and a whistle. */
function wind(length: number, sr: number, seed: number): Float32Array {
  const gust = smoothRandom(length, 0.25, sr, new DspRandom(seed, 1));
  const flutter = smoothRandom(length, 3, sr, new DspRandom(seed, 2));
  const centre = new Float32Array(length);
  const level = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const g = gust[i] * gust[i];
    centre[i] = 250 + 900 * g + 120 * flutter[i];
    level[i] = 0.25 + 1.2 * g + 0.15 * flutter[i];
  }
  const body = modulatedBandpass(pinkNoise(length, new DspRandom(seed, 3)), centre, 1.2, sr);
  multiplyInto(body, level);

  const whistleCentre = new Float32Array(length);
  for (let i = 0; i < length; i++) whistleCentre[i] = 2.2 * centre[i] + 300;
  const whistle = modulatedBandpass(
    whiteNoise(length, new DspRandom(seed, 4)),
    whistleCentre,
    18,
    sr,
  );
  for (let i = 0; i < length; i++) whistle[i] *= M.max(0, gust[i] - 0.55) * 2.5;

  const rumble = biquad(brownNoise(length, new DspRandom(seed, 5)), 'lowpass', 120, 0.7, sr);
  multiplyInto(rumble, level);

  const out = new Float32Array(length);
  mixInto(out, body, 1);
  mixInto(out, whistle, 0.6);
  mixInto(out, rumble, 0.5);
  return out;
}

/**
 * A room of people talking: several voices, each a glottal pulse train with jittered pitch
 * through two formant bands that move per syllable, gated by syllable and phrase envelopes;
 * then distance (low-pass) and a few glass clinks.
 */
function crowd(length: number, sr: number, seed: number): Float32Array {
  // The murmur is low-passed at 3 kHz anyway, so the voices are rendered at a quarter of the
  // rate and interpolated up: four times less work, and the low-pass removes the images.
  const factor = M.max(1, M.floor(sr / 11025));
  const lr = sr / factor;
  const n = M.ceil(length / factor) + 1;
  const voices = new Float32Array(n);
  const talkers = 6;
  for (let v = 0; v < talkers; v++) {
    const rng = new DspRandom(seed, 10 + v);
    const f0 = rng.range(95, 230);
    const source = new Float32Array(n);
    const breath = whiteNoise(n, new DspRandom(seed, 40 + v));
    let phase = rng.next();
    const jitter = smoothRandom(n, 5, lr, new DspRandom(seed, 60 + v));
    for (let i = 0; i < n; i++) {
      phase += (f0 * (0.85 + 0.3 * jitter[i])) / lr;
      if (phase >= 1) phase -= 1;
      // A sawtooth-ish glottal pulse plus aspiration noise.
      source[i] = 1 - 2 * phase + 0.3 * breath[i];
    }
    // Syllables: new vowel every 120–300 ms; phrases with pauses between them.
    const f1 = new Float32Array(n);
    const f2 = new Float32Array(n);
    const gate = new Float32Array(n);
    let i = 0;
    let speaking = rng.next() < 0.6;
    let phraseEnd = M.floor(rng.range(0.5, 3) * lr);
    while (i < n) {
      const syllable = M.floor(rng.range(0.12, 0.3) * lr);
      const a = rng.range(300, 850);
      const b = rng.range(900, 2400);
      const end = M.min(n, i + syllable);
      for (let j = i; j < end; j++) {
        f1[j] = a;
        f2[j] = b;
        gate[j] = speaking ? M.sin((M.PI * (j - i)) / syllable) : 0;
      }
      i = end;
      if (i >= phraseEnd) {
        speaking = !speaking;
        phraseEnd = i + M.floor((speaking ? rng.range(1, 4) : rng.range(0.3, 2)) * lr);
      }
    }
    const formant1 = modulatedBandpass(Float32Array.from(source), f1, 5, lr);
    const formant2 = modulatedBandpass(source, f2, 7, lr);
    const gain = rng.range(0.5, 1);
    for (let j = 0; j < n; j++) voices[j] += gain * gate[j] * (formant1[j] + 0.5 * formant2[j]);
  }
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) {
    const x = i / factor;
    const k = M.floor(x);
    const t = x - k;
    out[i] = voices[k] + (voices[k + 1] - voices[k]) * t;
  }
  biquad(out, 'lowpass', 3000, 0.7, sr);
  mixInto(out, biquad(pinkNoise(length, new DspRandom(seed, 2)), 'lowpass', 1500, 0.7, sr), 0.15);
  const rng = new DspRandom(seed, 3);
  for (let t = rng.exponential(0.4); t * sr < length; t += rng.exponential(0.4)) {
    const start = M.floor(t * sr);
    const f = rng.range(2500, 5000);
    const amplitude = rng.range(0.02, 0.06);
    addResonator(out, start, f, 0.05, amplitude, sr);
    addResonator(out, start, f * 2.7, 0.03, amplitude * 0.5, sr);
  }
  return out;
}

/** An empty room: ventilation, a low building rumble, faint mains hum and air hiss. */
function roomTone(length: number, sr: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  const air = biquad(pinkNoise(length, new DspRandom(seed, 1)), 'lowpass', 2200, 0.7, sr);
  const hvac = biquad(pinkNoise(length, new DspRandom(seed, 2)), 'bandpass', 240, 1.4, sr);
  const building = biquad(brownNoise(length, new DspRandom(seed, 3)), 'lowpass', 90, 0.7, sr);
  const drift = smoothRandom(length, 0.1, sr, new DspRandom(seed, 4));
  for (let i = 0; i < length; i++) hvac[i] *= 0.8 + 0.4 * drift[i];
  mixInto(out, air, 0.4);
  mixInto(out, hvac, 1.2);
  mixInto(out, building, 0.4);
  const humBase = new DspRandom(seed, 5).next() < 0.5 ? 50 : 60;
  for (let i = 0; i < length; i++) {
    const w = (2 * M.PI * humBase * i) / sr;
    out[i] += 0.006 * M.sin(2 * w) + 0.003 * M.sin(4 * w);
  }
  return out;
}

/** Leaves in a breeze and birdsong: phrases of frequency-swept chirps from a few species. */
function forest(length: number, sr: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  const breeze = smoothRandom(length, 0.2, sr, new DspRandom(seed, 1));
  const leaves = biquad(
    biquad(pinkNoise(length, new DspRandom(seed, 2)), 'highpass', 1500, 0.7, sr),
    'lowpass',
    7000,
    0.7,
    sr,
  );
  for (let i = 0; i < length; i++) leaves[i] *= 0.3 + 0.9 * breeze[i];
  mixInto(out, leaves, 0.5);
  mixInto(out, biquad(brownNoise(length, new DspRandom(seed, 3)), 'lowpass', 200, 0.7, sr), 0.2);

  const rng = new DspRandom(seed, 4);
  // Species: base pitch, sweep ratio, chirp length, notes per phrase, distance gain.
  const species = [0, 1, 2].map(() => ({
    base: rng.range(2500, 5500),
    sweep: rng.range(0.6, 1.8),
    chirp: rng.range(0.04, 0.14),
    notes: 2 + M.floor(rng.next() * 6),
    gain: rng.range(0.04, 0.12),
  }));
  const birds = new Float32Array(length);
  for (let t = rng.exponential(0.6); t * sr < length; t += rng.exponential(0.6)) {
    const s = species[M.floor(rng.next() * species.length)];
    let at = M.floor(t * sr);
    for (let n = 0; n < s.notes && at < length; n++) {
      const f0 = s.base * rng.range(0.92, 1.08);
      addGlide(birds, at, s.chirp, f0, f0 * s.sweep, s.gain, sr);
      at += M.floor((s.chirp + rng.range(0.03, 0.1)) * sr);
    }
  }
  mixInto(out, biquad(birds, 'lowpass', 9000, 0.7, sr), 1);
  return out;
}

/**
 * Someone walking on a hard floor: heel strike (a low thump and a short dull noise burst) then
 * the toe scuff ~100 ms later, at a walking pace with human irregularity, over a faint room.
 */
function footsteps(length: number, sr: number, seed: number): Float32Array {
  const rng = new DspRandom(seed, 1);
  const heelExcitation = new Float32Array(length);
  const scuffExcitation = new Float32Array(length);
  const thumps = new Float32Array(length);
  const noise = whiteNoise(length, new DspRandom(seed, 2));
  const interval = rng.range(0.48, 0.62);
  let left = true;
  for (let t = rng.range(0.1, 0.4); t * sr < length; t += interval * rng.range(0.92, 1.08)) {
    const start = M.floor(t * sr);
    const level = rng.range(0.7, 1) * (left ? 1 : 0.85);
    left = !left;
    burst(heelExcitation, noise, start, M.floor(0.035 * sr), level);
    addResonator(thumps, start, rng.range(70, 110), 0.03, level * 0.05, sr);
    burst(
      scuffExcitation,
      noise,
      start + M.floor(rng.range(0.08, 0.12) * sr),
      M.floor(0.05 * sr),
      level * 0.4,
    );
  }
  biquad(heelExcitation, 'lowpass', 900, 0.9, sr);
  biquad(scuffExcitation, 'bandpass', 3200, 0.8, sr);
  const out = new Float32Array(length);
  mixInto(out, heelExcitation, 1);
  mixInto(out, scuffExcitation, 0.8);
  mixInto(out, thumps, 1);
  // A short early reflection gives the floor a room around it.
  const delay = M.floor(0.023 * sr);
  for (let i = length - 1; i >= delay; i--) out[i] += 0.3 * out[i - delay];
  mixInto(out, biquad(pinkNoise(length, new DspRandom(seed, 3)), 'lowpass', 1500, 0.7, sr), 0.015);
  return out;
}

/** Copies a noise burst with a fast-attack exponential decay into `out`. */
function burst(
  out: Float32Array,
  noise: Float32Array,
  start: number,
  samples: number,
  level: number,
): void {
  const end = M.min(out.length, start + samples);
  const attack = M.max(1, M.floor(samples * 0.05));
  for (let i = start; i < end; i++) {
    const k = i - start;
    const env = k < attack ? k / attack : M.exp((-5 * (k - attack)) / samples);
    out[i] += level * env * noise[i];
  }
}
