import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FfmpegEncoder, FfmpegError } from './ffmpeg.encoder';
import { extractFrame, probeMedia } from './media.probe';

const W = 64;
const H = 48;

function tmp(ext: string): string {
  return path.join(os.tmpdir(), `ffmpeg-encoder-spec-${randomBytes(4).toString('hex')}.${ext}`);
}

/** `n` frames of a solid colour that brightens frame by frame. */
function frames(n: number, rgb: [number, number, number] = [200, 40, 20]): Uint8Array {
  const out = new Uint8Array(n * W * H * 3);
  for (let f = 0; f < n; f++) {
    for (let p = 0; p < W * H; p++) {
      const at = (f * W * H + p) * 3;
      out[at] = rgb[0];
      out[at + 1] = Math.min(255, rgb[1] + f);
      out[at + 2] = rgb[2];
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('FfmpegEncoder', () => {
  const files: string[] = [];
  const out = (ext = 'mp4') => {
    const file = tmp(ext);
    files.push(file);
    return file;
  };
  afterAll(async () => {
    await Promise.all(files.map((f) => rm(f, { force: true })));
  });

  it('encodes rgb24 frames to an H.264 MP4 of the exact frame count and rate', async () => {
    const output = out();
    const encoder = FfmpegEncoder.start({ width: W, height: H, fps: 12, output });
    await encoder.write(frames(6));
    await encoder.write(frames(4));
    await encoder.finish();
    expect(encoder.frames).toBe(10);

    const probed = await probeMedia(output);
    expect(probed.video).toEqual({
      codec: 'h264',
      pixelFormat: 'yuv420p',
      width: W,
      height: H,
      fps: 12,
      frames: 10,
    });
    expect(probed.audio).toBeUndefined();
    expect(Math.abs(probed.duration - 10 / 12)).toBeLessThan(1 / 12);

    // Colours survive the trip through yuv420p within a few levels.
    const frame = await extractFrame(output, 0, { width: W, height: H });
    const mid = ((H / 2) * W + W / 2) * 3;
    expect(Math.abs(frame[mid] - 200)).toBeLessThan(8);
    expect(Math.abs(frame[mid + 1] - 40)).toBeLessThan(8);
    expect(Math.abs(frame[mid + 2] - 20)).toBeLessThan(8);
  });

  it('muxes a float PCM file as an AAC track', async () => {
    const output = out();
    const pcm = out('f32');
    const rate = 48_000;
    const samples = new Float32Array(rate);
    for (let i = 0; i < samples.length; i++)
      samples[i] = 0.3 * Math.sin((2 * Math.PI * 440 * i) / rate);
    await writeFile(pcm, Buffer.from(samples.buffer));

    const encoder = FfmpegEncoder.start({
      width: W,
      height: H,
      fps: 24,
      output,
      audio: { path: pcm, sampleRate: rate, channels: 1 },
    });
    await encoder.write(frames(24));
    await encoder.finish();

    const probed = await probeMedia(output);
    expect(probed.video).toMatchObject({ codec: 'h264', frames: 24, fps: 24 });
    expect(probed.audio).toEqual({ codec: 'aac', sampleRate: rate, channels: 1 });
    expect(Math.abs(probed.duration - 1)).toBeLessThan(1 / 24);
  });

  it('aborting kills ffmpeg at once, fails the pending write and removes the file', async () => {
    const output = out();
    const controller = new AbortController();
    // Large frames so that the pipe fills and the write waits for ffmpeg.
    const big = { width: 1280, height: 720 };
    const encoder = FfmpegEncoder.start({ ...big, fps: 24, output, signal: controller.signal });
    const pid = encoder.pid!;
    expect(alive(pid)).toBe(true);
    const batch = new Uint8Array(big.width * big.height * 3 * 8);
    const writing = encoder.write(batch);
    const reason = new Error('cancelled by test');
    controller.abort(reason);
    await expect(writing).rejects.toBe(reason);
    await encoder.abort();
    expect(alive(pid)).toBe(false);
    expect(existsSync(output)).toBe(false);
    await expect(encoder.write(batch)).rejects.toBe(reason);
  });

  it('reports ffmpeg failures with its own words', async () => {
    const output = path.join(os.tmpdir(), 'no-such-dir-for-ffmpeg-spec', 'out.mp4');
    const encoder = FfmpegEncoder.start({ width: W, height: H, fps: 24, output });
    const attempt = (async () => {
      await encoder.write(frames(2));
      await encoder.finish();
    })();
    await expect(attempt).rejects.toBeInstanceOf(FfmpegError);
    await expect(attempt).rejects.toThrow(/ffmpeg .*(exit code|exited)/);
  });

  it('refuses partial frames', async () => {
    const encoder = FfmpegEncoder.start({ width: W, height: H, fps: 24, output: out() });
    await expect(encoder.write(new Uint8Array(10))).rejects.toThrow(RangeError);
    await encoder.abort();
  });
});
