/**
 * Small DSP toolkit on Float32Array: seeded noise, RBJ biquads, a block-modulated state-variable
 * filter, slow random envelopes and damped resonators. Plain typed-array loops: on V8 one pass
 * over 30 s of 44.1 kHz audio costs a few milliseconds, far less than staging it through tensors.
 */

// Hot loops read Math through a module binding: a global lookup per sample is slow inside
// vm contexts (jest), and the binding costs nothing elsewhere.
const M = Math;

/** mulberry32: tiny, fast, identical on every platform, so a seed always rebuilds the same sound. */
export class DspRandom {
  private state: number;

  constructor(seed: number, stream = 0) {
    this.state = (M.imul((seed | 0) ^ 0x5bd1e995, 0x9e3779b1) + M.imul(stream + 1, 0x85ebca6b)) | 0;
    for (let i = 0; i < 4; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = M.imul(t ^ (t >>> 15), t | 1);
    t ^= t + M.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Exponential inter-arrival time for a Poisson process of `rate` events per unit. */
  exponential(rate: number): number {
    return -M.log(1 - this.next()) / rate;
  }
}

export function whiteNoise(length: number, rng: DspRandom): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = rng.next() * 2 - 1;
  return out;
}

/** Pink (1/f) noise, Paul Kellet's economy filter; roughly unit peak. */
export function pinkNoise(length: number, rng: DspRandom): Float32Array {
  const out = new Float32Array(length);
  let b0 = 0;
  let b1 = 0;
  let b2 = 0;
  for (let i = 0; i < length; i++) {
    const w = rng.next() * 2 - 1;
    b0 = 0.99765 * b0 + w * 0.099046;
    b1 = 0.963 * b1 + w * 0.2965164;
    b2 = 0.57 * b2 + w * 1.0526913;
    out[i] = (b0 + b1 + b2 + w * 0.1848) * 0.25;
  }
  return out;
}

/** Brown (1/f²) noise: a leaky integrator of white noise, for rumbles. */
export function brownNoise(length: number, rng: DspRandom): Float32Array {
  const out = new Float32Array(length);
  let b = 0;
  for (let i = 0; i < length; i++) {
    b = (b + 0.02 * (rng.next() * 2 - 1)) / 1.02;
    out[i] = b * 3.5;
  }
  return out;
}

export type BiquadType = 'lowpass' | 'highpass' | 'bandpass' | 'peaking' | 'highshelf' | 'lowshelf';

/** RBJ cookbook biquad, applied in place (transposed direct form II). */
export function biquad(
  x: Float32Array,
  type: BiquadType,
  freq: number,
  q: number,
  sampleRate: number,
  gainDb = 0,
): Float32Array {
  const f = M.min(M.max(freq, 1), sampleRate * 0.49);
  const w0 = (2 * M.PI * f) / sampleRate;
  const cos = M.cos(w0);
  const alpha = M.sin(w0) / (2 * q);
  const a = M.pow(10, gainDb / 40);
  let b0: number, b1: number, b2: number, a0: number, a1: number, a2: number;
  switch (type) {
    case 'lowpass':
      b0 = (1 - cos) / 2;
      b1 = 1 - cos;
      b2 = b0;
      a0 = 1 + alpha;
      a1 = -2 * cos;
      a2 = 1 - alpha;
      break;
    case 'highpass':
      b0 = (1 + cos) / 2;
      b1 = -(1 + cos);
      b2 = b0;
      a0 = 1 + alpha;
      a1 = -2 * cos;
      a2 = 1 - alpha;
      break;
    case 'bandpass':
      b0 = alpha;
      b1 = 0;
      b2 = -alpha;
      a0 = 1 + alpha;
      a1 = -2 * cos;
      a2 = 1 - alpha;
      break;
    case 'peaking':
      b0 = 1 + alpha * a;
      b1 = -2 * cos;
      b2 = 1 - alpha * a;
      a0 = 1 + alpha / a;
      a1 = -2 * cos;
      a2 = 1 - alpha / a;
      break;
    case 'lowshelf': {
      const s = 2 * M.sqrt(a) * alpha;
      b0 = a * (a + 1 - (a - 1) * cos + s);
      b1 = 2 * a * (a - 1 - (a + 1) * cos);
      b2 = a * (a + 1 - (a - 1) * cos - s);
      a0 = a + 1 + (a - 1) * cos + s;
      a1 = -2 * (a - 1 + (a + 1) * cos);
      a2 = a + 1 + (a - 1) * cos - s;
      break;
    }
    case 'highshelf': {
      const s = 2 * M.sqrt(a) * alpha;
      b0 = a * (a + 1 + (a - 1) * cos + s);
      b1 = -2 * a * (a - 1 + (a + 1) * cos);
      b2 = a * (a + 1 + (a - 1) * cos - s);
      a0 = a + 1 - (a - 1) * cos + s;
      a1 = 2 * (a - 1 - (a + 1) * cos);
      a2 = a + 1 - (a - 1) * cos - s;
      break;
    }
  }
  const nb0 = b0 / a0;
  const nb1 = b1 / a0;
  const nb2 = b2 / a0;
  const na1 = a1 / a0;
  const na2 = a2 / a0;
  let z1 = 0;
  let z2 = 0;
  for (let i = 0; i < x.length; i++) {
    const input = x[i];
    const y = nb0 * input + z1;
    z1 = nb1 * input - na1 * y + z2;
    z2 = nb2 * input - na2 * y;
    x[i] = y;
  }
  return x;
}

/**
 * Bandpass state-variable filter (TPT form) whose centre follows `centreHz` per sample; the
 * coefficient is refreshed every 32 samples because tan() per sample would dominate the cost.
 */
export function modulatedBandpass(
  x: Float32Array,
  centreHz: Float32Array,
  q: number,
  sampleRate: number,
): Float32Array {
  const k = 1 / q;
  let ic1 = 0;
  let ic2 = 0;
  let a1 = 0;
  let a2 = 0;
  let a3 = 0;
  for (let i = 0; i < x.length; i++) {
    if ((i & 31) === 0) {
      const f = M.min(M.max(centreHz[i], 10), sampleRate * 0.45);
      const g = M.tan((M.PI * f) / sampleRate);
      a1 = 1 / (1 + g * (g + k));
      a2 = g * a1;
      a3 = g * a2;
    }
    const v0 = x[i];
    const v3 = v0 - ic2;
    const v1 = a1 * ic1 + a2 * v3;
    const v2 = ic2 + a2 * ic1 + a3 * v3;
    ic1 = 2 * v1 - ic1;
    ic2 = 2 * v2 - ic2;
    x[i] = k * v1; // unit gain at the centre
  }
  return x;
}

/**
 * A slow random curve in [0, 1]: control points every 1/rateHz seconds, cosine-interpolated.
 * Drives gusts, swells and crowd activity.
 */
export function smoothRandom(
  length: number,
  rateHz: number,
  sampleRate: number,
  rng: DspRandom,
): Float32Array {
  const out = new Float32Array(length);
  const step = M.max(1, M.round(sampleRate / rateHz));
  let prev = rng.next();
  for (let start = 0; start < length; start += step) {
    const next = rng.next();
    const end = M.min(length, start + step);
    for (let i = start; i < end; i++) {
      const t = (i - start) / step;
      const w = (1 - M.cos(M.PI * t)) / 2;
      out[i] = prev + (next - prev) * w;
    }
    prev = next;
  }
  return out;
}

/**
 * Adds a struck damped resonator (y = 2r·cos(w)·y₁ − r²·y₂) to `out` at `start`: a drop, a knock,
 * a clink. Cheap: no trig per sample.
 */
export function addResonator(
  out: Float32Array,
  start: number,
  freqHz: number,
  decaySeconds: number,
  amplitude: number,
  sampleRate: number,
): void {
  const w = (2 * M.PI * freqHz) / sampleRate;
  const r = M.exp(-1 / (decaySeconds * sampleRate));
  const c1 = 2 * r * M.cos(w);
  const c2 = -r * r;
  const length = M.min(out.length - start, M.ceil(decaySeconds * sampleRate * 7));
  let y1 = 0;
  let y2 = 0;
  for (let i = 0; i < length; i++) {
    const y = (i === 0 ? amplitude : 0) + c1 * y1 + c2 * y2;
    out[start + i] += y;
    y2 = y1;
    y1 = y;
  }
}

/** Adds a sine that glides from f0 to f1 under a Hann envelope (chirps, bubbles, horns). */
export function addGlide(
  out: Float32Array,
  start: number,
  seconds: number,
  f0: number,
  f1: number,
  amplitude: number,
  sampleRate: number,
): void {
  const length = M.min(out.length - start, M.round(seconds * sampleRate));
  let phase = 0;
  for (let i = 0; i < length; i++) {
    const t = i / length;
    const f = f0 + (f1 - f0) * t;
    phase += (2 * M.PI * f) / sampleRate;
    const env = 0.5 - 0.5 * M.cos(2 * M.PI * t);
    out[start + i] += amplitude * env * M.sin(phase);
  }
}

export function rms(x: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i] * x[i];
  return x.length === 0 ? 0 : M.sqrt(sum / x.length);
}

export function peak(x: Float32Array): number {
  let p = 0;
  for (let i = 0; i < x.length; i++) {
    const a = M.abs(x[i]);
    if (a > p) p = a;
  }
  return p;
}

/** out += gain · x (x may be shorter). */
export function mixInto(out: Float32Array, x: Float32Array, gain: number): void {
  const n = M.min(out.length, x.length);
  for (let i = 0; i < n; i++) out[i] += gain * x[i];
}

/** out[i] *= env[i]. */
export function multiplyInto(out: Float32Array, env: Float32Array): void {
  const n = M.min(out.length, env.length);
  for (let i = 0; i < n; i++) out[i] *= env[i];
}

/** Linear fade in and out, so a clip starts and ends without a click. */
export function fadeEdges(x: Float32Array, fadeSamples: number): void {
  const n = M.min(fadeSamples, M.floor(x.length / 2));
  for (let i = 0; i < n; i++) {
    const g = i / n;
    x[i] *= g;
    x[x.length - 1 - i] *= g;
  }
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Band-limited resampling (Hann-windowed sinc, 16 zero crossings each side) between integer
 * rates. Polyphase: the rational ratio to/from has few phases for audio rates (22,050 → 44,100
 * has 2), so every kernel is computed once and the inner loop is a plain dot product.
 */
export function resample(x: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return Float32Array.from(x);
  const g = gcd(from, to);
  const up = to / g;
  const down = from / g;
  const n = M.round((x.length * to) / from);
  const out = new Float32Array(n);
  // Downsampling lowers the cutoff below the input's Nyquist and widens the kernel to match.
  const cutoff = M.min(1, to / from) * 0.97;
  const half = M.ceil(16 / cutoff);
  const taps = 2 * half;
  const phases = M.min(up, 4096);
  const kernels = new Float32Array(phases * taps);
  for (let p = 0; p < phases; p++) {
    const frac = p / phases;
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const t = frac - (j - half + 1);
      const arg = t * cutoff;
      const sinc = arg === 0 ? 1 : M.sin(M.PI * arg) / (M.PI * arg);
      const win = M.abs(t) >= half ? 0 : 0.5 + 0.5 * M.cos((M.PI * t) / half);
      kernels[p * taps + j] = sinc * win;
      sum += sinc * win;
    }
    // Unit DC gain per phase: no ripple at the output rate from uneven kernel sums.
    for (let j = 0; j < taps; j++) kernels[p * taps + j] /= sum;
  }
  for (let i = 0; i < n; i++) {
    const num = i * down;
    const centre = M.floor(num / up);
    const phase = up <= 4096 ? num % up : M.floor(((num / up - centre) * phases) % phases);
    const base = phase * taps;
    const first = centre - half + 1;
    let acc = 0;
    if (first >= 0 && first + taps <= x.length) {
      for (let j = 0; j < taps; j++) acc += x[first + j] * kernels[base + j];
    } else {
      for (let j = 0; j < taps; j++) {
        const k = first + j;
        if (k >= 0 && k < x.length) acc += x[k] * kernels[base + j];
      }
    }
    out[i] = acc;
  }
  return out;
}
