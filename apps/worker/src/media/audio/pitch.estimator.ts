// Module binding for Math: global lookups in hot loops are slow inside vm contexts (jest).
const M = Math;

export interface PitchEstimate {
  /** Median fundamental frequency of the voiced frames, Hz. */
  f0: number;
  /** Share of analysed frames that were voiced. */
  voicedShare: number;
  frames: number;
}

/**
 * YIN (de Cheveigné & Kawahara 2002): cumulative mean normalized difference, absolute threshold,
 * parabolic interpolation. Reports the median over voiced frames, the robust summary of a
 * speaker's pitch. Expects speech-band audio; 8–16 kHz is plenty and keeps the O(W·τ) cost low.
 */
export function estimatePitch(
  x: Float32Array,
  sampleRate: number,
  options: { minHz?: number; maxHz?: number; threshold?: number; maxSeconds?: number } = {},
): PitchEstimate | null {
  const minHz = options.minHz ?? 60;
  const maxHz = options.maxHz ?? 500;
  const threshold = options.threshold ?? 0.15;
  const tauMin = M.max(2, M.floor(sampleRate / maxHz));
  const tauMax = M.ceil(sampleRate / minHz);
  const window = tauMax + 1;
  const hop = M.round(sampleRate * 0.01);
  const limit = M.min(x.length, M.round((options.maxSeconds ?? 30) * sampleRate));
  const d = new Float32Array(tauMax + 2);
  // Silence gate: frames below 1/30 of the loudest frame's RMS are skipped.
  let loudest = 0;
  const energies: number[] = [];
  for (let start = 0; start + window + tauMax < limit; start += hop) {
    let e = 0;
    for (let i = start; i < start + window; i++) e += x[i] * x[i];
    energies.push(e);
    if (e > loudest) loudest = e;
  }
  const pitches: number[] = [];
  let frames = 0;
  for (let f = 0; f < energies.length; f++) {
    if (energies[f] < loudest / 900) continue;
    frames += 1;
    const start = f * hop;
    for (let tau = 1; tau <= tauMax + 1; tau++) {
      let sum = 0;
      for (let i = start; i < start + window; i++) {
        const diff = x[i] - x[i + tau];
        sum += diff * diff;
      }
      d[tau] = sum;
    }
    // Cumulative mean normalization in place.
    let running = 0;
    d[0] = 1;
    for (let tau = 1; tau <= tauMax + 1; tau++) {
      running += d[tau];
      d[tau] = running > 0 ? (d[tau] * tau) / running : 1;
    }
    let tau = -1;
    for (let t = tauMin; t <= tauMax; t++) {
      if (d[t] < threshold) {
        while (t + 1 <= tauMax && d[t + 1] < d[t]) t++;
        tau = t;
        break;
      }
    }
    if (tau < 0) continue;
    const a = d[tau - 1];
    const b = d[tau];
    const c = d[tau + 1];
    const denom = a + c - 2 * b;
    const refined = denom !== 0 ? tau + (a - c) / (2 * denom) : tau;
    pitches.push(sampleRate / refined);
  }
  if (pitches.length < 3) return null;
  pitches.sort((p, q) => p - q);
  return {
    f0: pitches[pitches.length >> 1],
    voicedShare: pitches.length / M.max(1, frames),
    frames,
  };
}
