import type { AudioEmotion, AudioPace } from '@app/tasks';
import { DspRandom, biquad, whiteNoise } from './audio.dsp';

const M = Math;

/** How an emotion changes the synthesizer's delivery and the sound afterwards. */
export interface Prosody {
  /** Added to the voice's pitch parameter (0–99 scale, ≈1 Hz per step for a male voice). */
  pitchShift: number;
  speedFactor: number;
  amplitude: number;
  wordgap: number;
  /** Seconds of silence between sentences. */
  sentencePause: number;
}

export const EMOTION_PROSODY: Record<AudioEmotion, Prosody> = {
  neutral: { pitchShift: 0, speedFactor: 1, amplitude: 100, wordgap: 0, sentencePause: 0.35 },
  mysterious: { pitchShift: -8, speedFactor: 0.85, amplitude: 90, wordgap: 2, sentencePause: 0.6 },
  angry: { pitchShift: 6, speedFactor: 1.1, amplitude: 150, wordgap: 0, sentencePause: 0.2 },
  happy: { pitchShift: 12, speedFactor: 1.08, amplitude: 110, wordgap: 0, sentencePause: 0.3 },
  sad: { pitchShift: -12, speedFactor: 0.8, amplitude: 80, wordgap: 3, sentencePause: 0.7 },
  excited: { pitchShift: 18, speedFactor: 1.2, amplitude: 125, wordgap: 0, sentencePause: 0.2 },
  whisper: { pitchShift: 0, speedFactor: 0.92, amplitude: 100, wordgap: 1, sentencePause: 0.45 },
  fearful: { pitchShift: 10, speedFactor: 1.15, amplitude: 95, wordgap: 1, sentencePause: 0.3 },
};

export const PACE_FACTOR: Record<AudioPace, { speed: number; wordgap: number; pause: number }> = {
  slow: { speed: 0.78, wordgap: 1, pause: 1.5 },
  normal: { speed: 1, wordgap: 0, pause: 1 },
  fast: { speed: 1.28, wordgap: 0, pause: 0.6 },
};

/**
 * The colour an emotion puts on the rendered voice (in place where possible): whisper replaces
 * the voiced excitation by noise, angry saturates and adds presence, sad and mysterious darken
 * (mysterious also gets a room), fearful trembles, happy/excited brighten.
 */
export function colourVoice(
  x: Float32Array,
  sr: number,
  emotion: AudioEmotion,
  seed: number,
): Float32Array {
  switch (emotion) {
    case 'neutral':
      return x;
    case 'whisper':
      return whisper(x, sr, seed);
    case 'angry': {
      biquad(x, 'peaking', 2500, 1, sr, 5);
      for (let i = 0; i < x.length; i++) x[i] = M.tanh(2.2 * x[i]) / M.tanh(2.2);
      return x;
    }
    case 'sad':
      return biquad(x, 'lowpass', 2800, 0.7, sr);
    case 'mysterious':
      biquad(x, 'lowpass', 3500, 0.7, sr);
      return room(x, sr);
    case 'happy':
      return biquad(x, 'highshelf', 3000, 0.7, sr, 3);
    case 'excited':
      return biquad(x, 'highshelf', 2500, 0.7, sr, 4.5);
    case 'fearful': {
      // Tremolo at 6.5 Hz with a slowly wandering depth: a shaky voice.
      for (let i = 0; i < x.length; i++) {
        const t = i / sr;
        x[i] *=
          1 - (0.22 + 0.08 * M.sin(2 * M.PI * 0.4 * t)) * (0.5 + 0.5 * M.sin(2 * M.PI * 6.5 * t));
      }
      return biquad(x, 'highpass', 180, 0.7, sr);
    }
  }
}

/**
 * Noise vocoder: the voice is split into 18 bands, each band's envelope modulates noise in the
 * same band. What remains is the spectral shape (formants, consonants) without the glottal pulse,
 * which is what a whisper is.
 */
function whisper(x: Float32Array, sr: number, seed: number): Float32Array {
  const out = new Float32Array(x.length);
  const bands = 18;
  const lo = 150;
  const hi = M.min(8000, sr * 0.45);
  const envelopeCoeff = M.exp(-1 / (0.008 * sr));
  const noise = whiteNoise(x.length, new DspRandom(seed, 99));
  for (let b = 0; b < bands; b++) {
    const centre = lo * M.pow(hi / lo, (b + 0.5) / bands);
    const q = 4;
    const band = biquad(Float32Array.from(x), 'bandpass', centre, q, sr);
    const carrier = biquad(Float32Array.from(noise), 'bandpass', centre, q, sr);
    // Whispers carry relatively more energy high up: tilt the bands upward.
    const tilt = 0.6 + (0.8 * b) / bands;
    let env = 0;
    for (let i = 0; i < x.length; i++) {
      const a = M.abs(band[i]);
      env = a > env ? a : envelopeCoeff * env + (1 - envelopeCoeff) * a;
      out[i] += tilt * env * carrier[i] * 3;
    }
  }
  return out;
}

/** A small room: a handful of decaying early reflections, no metallic tail. */
function room(x: Float32Array, sr: number): Float32Array {
  const taps = [
    [0.029, 0.32],
    [0.043, 0.25],
    [0.061, 0.19],
    [0.083, 0.14],
    [0.117, 0.1],
  ];
  const tail = M.round(0.12 * sr);
  const out = new Float32Array(x.length + tail);
  out.set(x);
  for (const [delay, gain] of taps) {
    const d = M.round(delay * sr);
    for (let i = 0; i < x.length; i++) out[i + d] += gain * x[i];
  }
  return out;
}
