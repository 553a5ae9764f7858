import type * as TfCore from '@tensorflow/tfjs-core';

type Tf = typeof TfCore;

/** Programme loudness target: gated RMS of −18 dBFS, near broadcast dialogue levels. */
export const TARGET_LOUDNESS_DBFS = -18;
/** Ambience bed relative to the voice's loudness. */
export const AMBIENCE_RELATIVE_DB = -17;
/** Where the soft limiter starts bending peaks, and the ceiling it approaches. */
const KNEE = 0.85;
const CEILING = 0.98;
/** Tensor work goes in chunks of this many 100 ms hops, with the event loop free in between. */
const CHUNK_HOPS = 20;

export interface MixResult {
  samples: Float32Array;
  /** Gated loudness before normalization, dBFS (RMS of the loud 400 ms blocks). */
  inputLoudnessDb: number;
  outputLoudnessDb: number;
  peak: number;
}

/**
 * Mixes the ambience under the voice and normalizes loudness with tfjs: per-hop energies for a
 * BS.1770-style gate (400 ms blocks, absolute −70 dB and relative −10 dB gates; RMS without
 * K-weighting), a gain, and a tanh soft limiter on the peaks. Works in 2 s chunks: a whole
 * programme as one tensor is slow on wasm (heap growth) and would block the event loop.
 */
export async function mixDialogue(
  tf: Tf,
  voice: Float32Array,
  ambience: Float32Array | null,
  sampleRate: number,
  signal?: AbortSignal,
): Promise<MixResult> {
  const hop = Math.round(0.1 * sampleRate);
  const chunk = hop * CHUNK_HOPS;
  const n = voice.length;
  const out = Float32Array.from(voice);

  if (ambience && ambience.length > 0) {
    const bed = ambience.length === n ? ambience : fit(ambience, n);
    const voiceDb = gatedLoudness(await hopEnergies(tf, voice, hop, signal));
    const bedEnergy = mean(await hopEnergies(tf, bed, hop, signal));
    // The bed sits a fixed distance under the voice, whatever the ambience's own level.
    const gain =
      bedEnergy > 0 && Number.isFinite(voiceDb)
        ? Math.pow(10, (voiceDb + AMBIENCE_RELATIVE_DB) / 20) / Math.sqrt(bedEnergy)
        : 0;
    await chunked(n, chunk, signal, (start, end) => {
      const mixed = tf.tidy(() =>
        tf.add(
          tf.tensor1d(out.subarray(start, end)),
          tf.mul(tf.tensor1d(bed.subarray(start, end)), gain),
        ),
      );
      out.set(mixed.dataSync(), start);
      mixed.dispose();
    });
  }

  const inputDb = gatedLoudness(await hopEnergies(tf, out, hop, signal));
  const gain = Number.isFinite(inputDb) ? Math.pow(10, (TARGET_LOUDNESS_DBFS - inputDb) / 20) : 1;
  let peak = 0;
  await chunked(n, chunk, signal, (start, end) => {
    const [limited, chunkPeak] = tf.tidy(() => {
      const scaled = tf.mul(tf.tensor1d(out.subarray(start, end)), gain);
      // Soft limiter: identity below the knee, tanh towards the ceiling above it.
      const magnitude = tf.abs(scaled);
      const over = tf.relu(tf.sub(magnitude, KNEE));
      const bent = tf.add(KNEE, tf.mul(CEILING - KNEE, tf.tanh(tf.div(over, CEILING - KNEE))));
      const y = tf.where(tf.greater(magnitude, KNEE), tf.mul(tf.sign(scaled), bent), scaled);
      return [y, tf.max(tf.abs(y))];
    });
    out.set(limited.dataSync(), start);
    peak = Math.max(peak, chunkPeak.dataSync()[0]);
    tf.dispose([limited, chunkPeak]);
  });

  return {
    samples: out,
    inputLoudnessDb: round(inputDb),
    outputLoudnessDb: round(gatedLoudness(await hopEnergies(tf, out, hop, signal))),
    peak: round(peak, 4),
  };
}

/** Runs `fn` over [0, n) in chunks, yielding to the event loop and checking `signal` between. */
async function chunked(
  n: number,
  chunk: number,
  signal: AbortSignal | undefined,
  fn: (start: number, end: number) => void,
): Promise<void> {
  for (let start = 0; start < n; start += chunk) {
    if (signal?.aborted) throw signal.reason;
    fn(start, Math.min(n, start + chunk));
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Mean square of each complete 100 ms hop; a signal shorter than one hop gives one value. */
async function hopEnergies(
  tf: Tf,
  x: Float32Array,
  hop: number,
  signal?: AbortSignal,
): Promise<Float32Array> {
  const hops = Math.floor(x.length / hop);
  if (hops === 0) {
    return tf.tidy(() => tf.mean(tf.square(tf.tensor1d(x)))).dataSync() as Float32Array;
  }
  const energies = new Float32Array(hops);
  const chunkHops = CHUNK_HOPS;
  await chunked(hops, chunkHops, signal, (first, last) => {
    const e = tf.tidy(() =>
      tf.mean(
        tf.reshape(tf.square(tf.tensor1d(x.subarray(first * hop, last * hop))), [
          last - first,
          hop,
        ]),
        1,
      ),
    );
    energies.set(e.dataSync(), first);
    e.dispose();
  });
  return energies;
}

/** dBFS of the 400 ms blocks (4 hops, 75 % overlap) that pass the absolute and relative gates. */
function gatedLoudness(hops: Float32Array): number {
  const blocks: number[] = [];
  if (hops.length < 4) blocks.push(mean(hops));
  for (let i = 0; i + 4 <= hops.length; i++)
    blocks.push((hops[i] + hops[i + 1] + hops[i + 2] + hops[i + 3]) / 4);
  const loud = blocks.filter((e) => e > Math.pow(10, -70 / 10));
  if (loud.length === 0) return -Infinity;
  const relative = (loud.reduce((s, e) => s + e, 0) / loud.length) * Math.pow(10, -10 / 10);
  const gated = loud.filter((e) => e > relative);
  return 10 * Math.log10(gated.reduce((s, e) => s + e, 0) / gated.length);
}

function mean(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return x.length === 0 ? 0 : s / x.length;
}

/** Ambience of another length: cut, or loop it (callers synthesize the exact length). */
function fit(x: Float32Array, length: number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i += x.length)
    out.set(x.subarray(0, Math.min(x.length, length - i)), i);
  return out;
}

function round(v: number, digits = 2): number {
  const f = Math.pow(10, digits);
  return Math.round(v * f) / f;
}
