import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createRequire } from 'node:module';
import { rm } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';

/**
 * Path of the ffmpeg binary shipped in `@ffmpeg-installer/ffmpeg` (x86-64, with libx264 and aac).
 * Resolved at run time so that a bundler leaves the package (and its binary) where npm put it.
 */
export function ffmpegPath(): string {
  const pkg = createRequire(__filename)('@ffmpeg-installer/ffmpeg') as { path: string };
  return pkg.path;
}

/** A raw PCM file muxed as the output's AAC track. */
export interface EncoderAudioInput {
  /** Interleaved little-endian float32 samples. */
  path: string;
  sampleRate: number;
  channels: 1 | 2;
  /** AAC bit rate, bits per second (default 128 000). */
  bitRate?: number;
}

export interface EncoderOptions {
  width: number;
  height: number;
  fps: number;
  /** Where the MP4 goes; removed again when the encoding fails or is aborted. */
  output: string;
  audio?: EncoderAudioInput;
  /**
   * x264 speed preset. `veryfast` keeps the encoder well below our frame production on two cores
   * at CRF 20 (`medium` costs about 60% more for ~10% smaller files).
   */
  preset?: string;
  crf?: number;
  /** Aborting kills ffmpeg at once (SIGKILL) and fails the pending write with the reason. */
  signal?: AbortSignal;
}

/** ffmpeg exited with an error; the message carries the end of its stderr. */
export class FfmpegError extends Error {
  override readonly name = 'FfmpegError';

  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
  }
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** How much of ffmpeg's stderr we keep for error messages. */
const STDERR_TAIL = 4096;

/**
 * Encodes raw rgb24 frames, streamed into ffmpeg's stdin, to H.264 (yuv420p, BT.709) in an MP4
 * with the index up front (+faststart), optionally muxing a PCM file as AAC. `write` waits until
 * ffmpeg took the batch, so a fast producer never queues more than one batch in memory.
 */
export class FfmpegEncoder {
  private readonly child: ChildProcessByStdio<Writable, null, Readable>;
  private readonly exited: Promise<Exit>;
  private exit?: Exit;
  private stderr = '';
  private finishing = false;
  private readonly frameBytes: number;
  private framesWritten = 0;
  private readonly onAbort = () => this.kill();

  private constructor(private readonly opts: EncoderOptions) {
    this.frameBytes = opts.width * opts.height * 3;
    this.child = spawn(ffmpegPath(), encoderArgs(opts), {
      stdio: ['pipe', 'ignore', 'pipe'],
      windowsHide: true,
    });
    this.exited = new Promise<Exit>((resolve) => {
      // 'error' alone (spawn failed) may come without 'close'; either settles the exit.
      this.child.once('error', (err) => {
        this.appendStderr(`\n${err.message}`);
        resolve((this.exit ??= { code: null, signal: null }));
      });
      this.child.once('close', (code, signal) => {
        resolve((this.exit ??= { code, signal }));
      });
    });
    this.child.stderr.setEncoding('utf8');
    this.child.stderr.on('data', (chunk: string) => this.appendStderr(chunk));
    // EPIPE when ffmpeg died: reported through the exit, not as an unhandled 'error' event.
    this.child.stdin.on('error', () => undefined);
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  static start(opts: EncoderOptions): FfmpegEncoder {
    opts.signal?.throwIfAborted();
    return new FfmpegEncoder(opts);
  }

  /** Process id of ffmpeg (undefined if it could not be started). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  get frames(): number {
    return this.framesWritten;
  }

  /**
   * Writes whole frames (a multiple of width × height × 3 bytes). Resolves once the pipe has taken
   * all of them: the caller may then reuse the buffer, and never has more than one batch queued.
   */
  async write(frames: Uint8Array): Promise<void> {
    if (frames.byteLength % this.frameBytes !== 0) {
      throw new RangeError(`${frames.byteLength} bytes is not a whole number of frames`);
    }
    this.throwIfStopped();
    this.framesWritten += frames.byteLength / this.frameBytes;
    const signal = this.opts.signal;
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err?: Error) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const onAbort = () => settle(signal?.reason as Error);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.child.stdin.write(frames, (err) => {
        if (!err) settle();
        // A broken pipe means ffmpeg is gone: report its own words once it has exited.
        else
          void this.exited.then(() =>
            settle(this.failure('exited while frames were being written')),
          );
      });
    });
  }

  /** Ends the input and waits for ffmpeg to write the file; throws if it did not. */
  async finish(): Promise<void> {
    this.throwIfStopped();
    this.finishing = true;
    this.child.stdin.end();
    const exit = await this.exited;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.opts.signal?.throwIfAborted();
    if (exit.code !== 0) {
      await rm(this.opts.output, { force: true });
      throw this.failure('failed');
    }
  }

  /** Kills ffmpeg if it still runs, waits until it is gone and removes the partial output. */
  async abort(): Promise<void> {
    this.kill();
    await this.exited;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    await rm(this.opts.output, { force: true });
  }

  private kill(): void {
    if (this.exit || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin.destroy();
    this.child.kill('SIGKILL');
  }

  private throwIfStopped(): void {
    this.opts.signal?.throwIfAborted();
    if (this.exit) throw this.failure('exited early');
    if (this.finishing) throw new Error('ffmpeg input already ended');
  }

  private failure(what: string): FfmpegError {
    const exit = this.exit;
    const how = exit?.signal
      ? `killed by ${exit.signal}`
      : exit?.code != null
        ? `exit code ${exit.code}`
        : 'could not start';
    const detail = this.stderr.trim().split('\n').slice(-5).join(' | ');
    return new FfmpegError(
      `ffmpeg ${what} (${how})${detail ? `: ${detail}` : ''}`,
      exit?.code ?? null,
      this.stderr,
    );
  }

  private appendStderr(chunk: string): void {
    this.stderr = (this.stderr + chunk).slice(-STDERR_TAIL);
  }
}

/**
 * ffmpeg's arguments for an encoding: raw rgb24 frames from `frames` (our pipe, or a file for the
 * benchmark's ffmpeg-only floor, so both encode with exactly these settings) into an H.264 MP4.
 */
export function encoderArgs(o: Omit<EncoderOptions, 'signal'>, frames = 'pipe:0'): string[] {
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    '-video_size',
    `${o.width}x${o.height}`,
    '-framerate',
    String(o.fps),
    '-i',
    frames,
  ];
  if (o.audio) {
    args.push(
      '-f',
      'f32le',
      '-ar',
      String(o.audio.sampleRate),
      '-ac',
      String(o.audio.channels),
      '-i',
      o.audio.path,
    );
  }
  args.push('-map', '0:v:0');
  if (o.audio) args.push('-map', '1:a:0');
  args.push(
    // Our frames are sRGB/BT.709 material: convert with that matrix and say so in the stream.
    '-vf',
    'scale=out_color_matrix=bt709:out_range=tv',
    '-c:v',
    'libx264',
    '-preset',
    o.preset ?? 'veryfast',
    '-crf',
    String(o.crf ?? 20),
    '-pix_fmt',
    'yuv420p',
    '-colorspace',
    'bt709',
    '-color_primaries',
    'bt709',
    '-color_trc',
    'bt709',
  );
  if (o.audio) {
    args.push('-c:a', 'aac', '-b:a', String(o.audio.bitRate ?? 128_000));
  }
  args.push('-movflags', '+faststart', '-f', 'mp4', '-y', o.output);
  return args;
}
