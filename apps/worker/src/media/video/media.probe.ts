import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ffmpegPath } from './ffmpeg.encoder';

const run = promisify(execFile);

export interface ProbedVideoStream {
  codec: string;
  pixelFormat: string;
  width: number;
  height: number;
  fps: number;
  /** Frames in the stream, counted by reading every packet. */
  frames: number;
}

export interface ProbedAudioStream {
  codec: string;
  sampleRate: number;
  channels: number;
}

export interface ProbedMedia {
  /** Container duration, seconds. */
  duration: number;
  video?: ProbedVideoStream;
  audio?: ProbedAudioStream;
}

/**
 * What a player sees in a media file, read with the bundled ffmpeg (there is no ffprobe in the
 * package): the header lines `ffmpeg -i` prints, and the frame count of a stream copy of the
 * video to the null muxer.
 */
export async function probeMedia(file: string): Promise<ProbedMedia> {
  const { stderr } = await run(
    ffmpegPath(),
    ['-hide_banner', '-nostdin', '-i', file, '-map', '0', '-c', 'copy', '-f', 'null', '-'],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  const duration = /Duration: (\d+):(\d+):(\d+(?:\.\d+)?)/.exec(stderr);
  if (!duration) throw new Error(`ffmpeg reported no duration for ${file}: ${stderr.slice(-500)}`);
  const media: ProbedMedia = {
    duration: Number(duration[1]) * 3600 + Number(duration[2]) * 60 + Number(duration[3]),
  };
  const videoLine = /Stream #0:\d+[^:]*: Video: ([^\n]*)/.exec(stderr)?.[1];
  if (videoLine) {
    const parts = splitTopLevel(videoLine);
    const size = /(\d+)x(\d+)/.exec(parts.find((p) => /^\d+x\d+/.test(p)) ?? '');
    // The last progress line ("frame=  168 ...") counts the packets copied.
    const counts = [...stderr.matchAll(/frame=\s*(\d+)/g)];
    media.video = {
      codec: parts[0].split(' ')[0],
      pixelFormat: (parts[1] ?? '').split('(')[0],
      width: Number(size?.[1] ?? 0),
      height: Number(size?.[2] ?? 0),
      fps: Number(/([\d.]+) fps/.exec(videoLine)?.[1] ?? 0),
      frames: counts.length > 0 ? Number(counts[counts.length - 1][1]) : 0,
    };
  }
  const audioLine = /Stream #0:\d+[^:]*: Audio: ([^\n]*)/.exec(stderr)?.[1];
  if (audioLine) {
    const parts = splitTopLevel(audioLine);
    const layout = parts[2] ?? '';
    media.audio = {
      codec: parts[0].split(' ')[0],
      sampleRate: parseInt(parts[1] ?? '0', 10),
      channels: layout === 'mono' ? 1 : layout === 'stereo' ? 2 : parseInt(layout, 10) || 0,
    };
  }
  return media;
}

/** Splits an ffmpeg stream description at commas outside parentheses and brackets. */
function splitTopLevel(line: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of line) {
    if (ch === '(' || ch === '[') depth += 1;
    if (ch === ')' || ch === ']') depth -= 1;
    if (ch === ',' && depth === 0) {
      parts.push(current.trim());
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current.trim());
  return parts;
}

/** Frame number `index` (0 = first) of the video, decoded to rgb24 bytes. */
export async function extractFrame(
  file: string,
  index: number,
  size: { width: number; height: number },
): Promise<Buffer> {
  const { stdout } = await run(
    ffmpegPath(),
    [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'error',
      '-i',
      file,
      // Decodes from the start and keeps exactly that frame: seeking by time can miss the last.
      '-vf',
      `select=eq(n\\,${Math.floor(index)})`,
      '-vsync',
      '0',
      '-frames:v',
      '1',
      '-f',
      'rawvideo',
      '-pix_fmt',
      'rgb24',
      'pipe:1',
    ],
    { encoding: 'buffer', maxBuffer: size.width * size.height * 3 + 1024 },
  );
  if (stdout.length !== size.width * size.height * 3) {
    throw new Error(
      `expected frame ${index} of ${size.width}x${size.height}, got ${stdout.length} bytes`,
    );
  }
  return stdout;
}
