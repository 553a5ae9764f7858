import { resample, rms } from './audio.dsp';
import { decodeAudio, encodeMp3 } from './ffmpeg.audio';
import { estimatePitch } from './pitch.estimator';
import { decodeWav, encodeWav } from './wav.codec';

function tone(hz: number, seconds: number, sr: number, harmonics = 1): Float32Array {
  const x = new Float32Array(Math.round(seconds * sr));
  for (let i = 0; i < x.length; i++) {
    for (let h = 1; h <= harmonics; h++)
      x[i] += (0.5 / h) * Math.sin((2 * Math.PI * hz * h * i) / sr);
  }
  return x;
}

describe('audio building blocks', () => {
  it('resamples 22,050 → 44,100 keeping a tone and its level', () => {
    const x = tone(1000, 1, 22_050);
    const y = resample(x, 22_050, 44_100);
    expect(y.length).toBe(44_100);
    expect(rms(y.subarray(1000, 43_000))).toBeCloseTo(rms(x.subarray(500, 21_500)), 2);
    // Still 1 kHz: zero crossings per second.
    let crossings = 0;
    for (let i = 1001; i < 43_050; i++) if (y[i - 1] < 0 && y[i] >= 0) crossings++;
    expect(Math.abs(crossings / (42_049 / 44_100) - 1000)).toBeLessThan(5);
  });

  it('downsampling removes what the new rate cannot hold', () => {
    const y = resample(tone(7000, 1, 44_100), 44_100, 11_025);
    expect(y.length).toBe(11_025);
    expect(rms(y.subarray(200, 10_800))).toBeLessThan(0.01);
  });

  it.each([110, 180, 260])('YIN finds a %d Hz voice-like tone within 1 %%', (hz) => {
    const f0 = estimatePitch(tone(hz, 1, 11_025, 6), 11_025)!.f0;
    expect(Math.abs(f0 / hz - 1)).toBeLessThan(0.01);
  });

  it('YIN finds no pitch in noise', () => {
    const noise = new Float32Array(11_025).map(() => Math.random() - 0.5);
    const p = estimatePitch(noise, 11_025);
    expect(p === null || p.voicedShare < 0.2).toBe(true);
  });

  it('WAV round-trips at 16 bits', () => {
    const x = tone(440, 0.5, 44_100);
    const { samples, sampleRate } = decodeWav(encodeWav(x, 44_100));
    expect(sampleRate).toBe(44_100);
    expect(samples.length).toBe(x.length);
    let err = 0;
    for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(samples[i] - x[i]));
    expect(err).toBeLessThan(3 / 32_768);
  });

  it('MP3 through ffmpeg keeps the exact length (gapless header) and the tone', async () => {
    const x = tone(440, 2.345, 44_100);
    const mp3 = await encodeMp3(x, 44_100);
    expect(mp3.subarray(0, 3).toString('latin1') === 'ID3' || mp3[0] === 0xff).toBe(true);
    const y = await decodeAudio(mp3, 44_100);
    expect(Math.abs(y.length - x.length)).toBeLessThan(0.01 * 44_100);
    expect(rms(y)).toBeCloseTo(rms(x), 1);
  });

  it('ffmpeg is killed when the signal aborts', async () => {
    const controller = new AbortController();
    const reason = new Error('stop');
    controller.abort(reason);
    await expect(encodeMp3(tone(440, 1, 44_100), 44_100, controller.signal)).rejects.toBe(reason);
  });
});
