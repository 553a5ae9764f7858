/** A mono PCM signal and its rate. */
export interface PcmAudio {
  samples: Float32Array;
  sampleRate: number;
}

/**
 * Reads a PCM WAV (8/16/24/32-bit integer or 32-bit float, any channel count) into mono float.
 * Chunks are walked rather than assuming a 44-byte header: many writers add LIST or fact chunks.
 */
export function decodeWav(data: Buffer): PcmAudio {
  if (
    data.length < 12 ||
    data.toString('latin1', 0, 4) !== 'RIFF' ||
    data.toString('latin1', 8, 12) !== 'WAVE'
  ) {
    throw new Error('not a RIFF/WAVE file');
  }
  let format = 0;
  let channels = 0;
  let sampleRate = 0;
  let bits = 0;
  let body: Buffer | undefined;
  for (let at = 12; at + 8 <= data.length;) {
    const id = data.toString('latin1', at, at + 4);
    const size = data.readUInt32LE(at + 4);
    const start = at + 8;
    // Streaming writers leave 0 or 0xffffffff as the data size: it runs to the end of the file.
    const end = size === 0 || start + size > data.length ? data.length : start + size;
    if (id === 'fmt ') {
      format = data.readUInt16LE(start);
      channels = data.readUInt16LE(start + 2);
      sampleRate = data.readUInt32LE(start + 4);
      bits = data.readUInt16LE(start + 14);
      // WAVE_FORMAT_EXTENSIBLE: the real format is the first two bytes of the sub-format GUID.
      if (format === 0xfffe && size >= 26) format = data.readUInt16LE(start + 24);
    } else if (id === 'data') {
      body = data.subarray(start, end);
      break;
    }
    at = start + size + (size & 1);
  }
  if (!body || channels < 1 || sampleRate < 1) throw new Error('WAV without fmt or data chunk');
  const bytes = bits / 8;
  if (!((format === 1 && [1, 2, 3, 4].includes(bytes)) || (format === 3 && bytes === 4))) {
    throw new Error(`unsupported WAV encoding (format ${format}, ${bits} bits)`);
  }
  const frames = Math.floor(body.length / (bytes * channels));
  const samples = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) {
      const o = (i * channels + c) * bytes;
      if (format === 3) sum += body.readFloatLE(o);
      else if (bytes === 1) sum += (body[o] - 128) / 128;
      else if (bytes === 2) sum += body.readInt16LE(o) / 32768;
      else if (bytes === 3) sum += body.readIntLE(o, 3) / 8388608;
      else sum += body.readInt32LE(o) / 2147483648;
    }
    samples[i] = sum / channels;
  }
  return { samples, sampleRate };
}

/** 16-bit PCM mono WAV, with TPDF dither so quiet ambience tails do not turn into distortion. */
export function encodeWav(samples: Float32Array, sampleRate: number, seed = 1): Buffer {
  const out = Buffer.alloc(44 + samples.length * 2);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + samples.length * 2, 4);
  out.write('WAVE', 8, 'latin1');
  out.write('fmt ', 12, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(1, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(samples.length * 2, 40);
  let state = seed | 0 || 1;
  const rand = () => {
    // xorshift32: dither needs no quality, only speed.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i] * 32767 + (rand() - rand());
    out.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v))), 44 + i * 2);
  }
  return out;
}
