import { AMBIENCE_NAMES, synthesizeAmbience } from './ambience.synth';
import { biquad, rms } from './audio.dsp';

const SR = 44_100;

function synth(name: string, seconds = 4, seed = 1): Float32Array {
  const out = synthesizeAmbience(name, seconds, SR, seed);
  if (!out) throw new Error(`no ambience ${name}`);
  return out;
}

/** Share of the signal's RMS above `hz`. */
function highShare(x: Float32Array, hz: number): number {
  return rms(biquad(Float32Array.from(x), 'highpass', hz, 0.7, SR)) / rms(x);
}

/** RMS of consecutive frames of `ms` milliseconds. */
function frameLevels(x: Float32Array, ms: number): number[] {
  const size = Math.round((ms / 1000) * SR);
  const levels: number[] = [];
  for (let i = 0; i + size <= x.length; i += size) levels.push(rms(x.subarray(i, i + size)));
  return levels;
}

function coefficientOfVariation(values: number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return Math.sqrt(variance) / mean;
}

describe('synthesizeAmbience', () => {
  it('offers the ambiences the audio and video tasks name', () => {
    expect(AMBIENCE_NAMES).toEqual(
      expect.arrayContaining([
        'rain_ambience',
        'city_night',
        'wind',
        'crowd',
        'room_tone',
        'forest',
        'footsteps',
      ]),
    );
  });

  it('returns null for an unknown name', () => {
    expect(synthesizeAmbience('thunder_from_mars', 1, SR)).toBeNull();
    expect(synthesizeAmbience('toString', 1, SR)).toBeNull();
  });

  it('rejects a negative length and a silly sample rate', () => {
    expect(() => synthesizeAmbience('wind', -1, SR)).toThrow(RangeError);
    expect(() => synthesizeAmbience('wind', 1, 100)).toThrow(RangeError);
    expect(synthesizeAmbience('wind', 0, SR)).toHaveLength(0);
  });

  it.each(AMBIENCE_NAMES.map((n) => [n]))(
    '%s: audible, bounded, exact length, clean edges',
    (name) => {
      const x = synth(name, 3.5);
      expect(x).toHaveLength(Math.round(3.5 * SR));
      let maxAbs = 0;
      let finite = true;
      for (const v of x) {
        finite &&= Number.isFinite(v);
        maxAbs = Math.max(maxAbs, Math.abs(v));
      }
      expect(finite).toBe(true);
      expect(maxAbs).toBeLessThanOrEqual(0.95 + 1e-6);
      expect(rms(x)).toBeGreaterThan(0.02);
      expect(Math.abs(x[0])).toBe(0);
      expect(Math.abs(x[x.length - 1])).toBe(0);
    },
  );

  it.each(AMBIENCE_NAMES.map((n) => [n]))(
    '%s: same seed same samples, other seed other samples',
    (name) => {
      const a = synth(name, 2, 42);
      const b = synth(name, 2, 42);
      const c = synth(name, 2, 43);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff += Math.abs(a[i] - c[i]);
      expect(diff / a.length).toBeGreaterThan(1e-3);
    },
  );

  it('gives each ambience its own character', () => {
    const rain = synth('rain_ambience', 6);
    const room = synth('room_tone', 6);
    const wind = synth('wind', 20);
    const crowd = synth('crowd', 6);
    const city = synth('city_night', 6);
    const forest = synth('forest', 6);
    // Rain hisses and birds sing high; room tone, crowd murmur and city rumble live low.
    expect(highShare(rain, 3000)).toBeGreaterThan(0.4);
    expect(highShare(forest, 3000)).toBeGreaterThan(0.4);
    expect(highShare(room, 3000)).toBeLessThan(0.15);
    expect(highShare(crowd, 3000)).toBeLessThan(0.15);
    expect(highShare(city, 3000)).toBeLessThan(0.25);
    // Room tone is quieter than the rest.
    expect(rms(room)).toBeLessThan(rms(rain) / 2);
    // Wind comes in gusts: its level changes much more than steady rain's.
    expect(coefficientOfVariation(frameLevels(wind, 250))).toBeGreaterThan(
      2 * coefficientOfVariation(frameLevels(rain, 250)),
    );
  });

  it('footsteps are discrete steps at a walking pace', () => {
    const x = synth('footsteps', 8, 5);
    const levels = frameLevels(x, 10);
    const threshold = Math.max(...levels) * 0.3;
    const onsets: number[] = [];
    for (let i = 1; i < levels.length; i++) {
      if (
        levels[i] > threshold &&
        levels[i - 1] <= threshold &&
        (onsets.length === 0 || i - onsets.at(-1)! > 25)
      ) {
        onsets.push(i);
      }
    }
    // 8 s at 0.48–0.62 s per step (±8 %): 12–17 steps.
    expect(onsets.length).toBeGreaterThanOrEqual(11);
    expect(onsets.length).toBeLessThanOrEqual(18);
    // Between steps it is nearly silent.
    const sorted = [...levels].sort((a, b) => a - b);
    expect(sorted[Math.floor(sorted.length * 0.3)]).toBeLessThan(Math.max(...levels) * 0.05);
  });

  it('renders 30 s at 44.1 kHz whole, finite and bounded (its speed is a benchmark figure)', () => {
    for (const name of AMBIENCE_NAMES) {
      const out = synth(name, 30);
      expect(out.length).toBe(30 * SR);
      let peak = 0;
      let finite = true;
      for (const v of out) {
        if (!Number.isFinite(v)) finite = false;
        else if (Math.abs(v) > peak) peak = Math.abs(v);
      }
      expect(finite).toBe(true);
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(1);
    }
  });
});
