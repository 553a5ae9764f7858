import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const FFMPEG: string = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;

export class FfmpegError extends Error {
  override readonly name = 'FfmpegError';
}

/**
 * Runs ffmpeg with `input` on stdin and collects stdout. The process is killed when `signal`
 * aborts (its reason is thrown), so a cancelled task leaves no ffmpeg behind.
 */
function runFfmpeg(args: string[], input: Buffer, signal?: AbortSignal): Promise<Buffer> {
  signal?.throwIfAborted();
  return new Promise<Buffer>((resolve, reject) => {
    const child = spawn(FFMPEG, ['-hide_banner', '-nostdin', '-loglevel', 'error', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    const onAbort = () => child.kill('SIGKILL');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      if (err.length < 4000) err += chunk.toString();
    });
    // EPIPE when ffmpeg rejects the input early; the exit code tells the story.
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.on('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      if (signal?.aborted) reject(signal.reason as Error);
      else if (code === 0) resolve(Buffer.concat(out));
      else reject(new FfmpegError(`ffmpeg exited with ${code}: ${err.trim() || 'no message'}`));
    });
    child.stdin.end(input);
  });
}

/** Decodes any audio ffmpeg reads (WAV, MP3, OGG, ...) to mono float PCM at `sampleRate`. */
export async function decodeAudio(
  data: Buffer,
  sampleRate: number,
  signal?: AbortSignal,
  maxSeconds = 60,
): Promise<Float32Array> {
  const raw = await runFfmpeg(
    [
      '-i',
      'pipe:0',
      '-t',
      String(maxSeconds),
      '-ac',
      '1',
      '-ar',
      String(sampleRate),
      '-f',
      'f32le',
      'pipe:1',
    ],
    data,
    signal,
  );
  const samples = new Float32Array(raw.length >> 2);
  Buffer.from(samples.buffer).set(raw.subarray(0, samples.length * 4));
  return samples;
}

/**
 * MP3 (libmp3lame, 128 kb/s CBR) of mono float PCM. Written to a file, not a pipe: only a
 * seekable output gets the Xing/LAME header whose delay and padding fields let players (and
 * ffmpeg) trim the encoder's padding, so the decoded duration matches ours.
 */
export async function encodeMp3(
  samples: Float32Array,
  sampleRate: number,
  signal?: AbortSignal,
): Promise<Buffer> {
  const dir = await mkdtemp(path.join(tmpdir(), 'process-audio-'));
  try {
    const file = path.join(dir, 'out.mp3');
    const pcm = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
    await runFfmpeg(
      [
        '-f',
        'f32le',
        '-ar',
        String(sampleRate),
        '-ac',
        '1',
        '-i',
        'pipe:0',
        '-c:a',
        'libmp3lame',
        '-b:a',
        '128k',
        '-write_xing',
        '1',
        '-y',
        file,
      ],
      pcm,
      signal,
    );
    return await readFile(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
