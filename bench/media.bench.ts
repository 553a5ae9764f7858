import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import sharp, { type SharpOptions } from 'sharp';
import { AppConfig, ConfigModule } from '@app/config';
import { GpuService } from '@app/gpu';
import {
  GENERATE_IMAGE_TASK,
  GENERATE_VIDEO_TASK,
  PROCESS_AUDIO_TASK,
  RENDER_ANIMATION_TASK,
  validateTaskData,
  type TaskDefinition,
} from '@app/tasks';
import { TestFileServer, TestSigningKeysModule } from '@app/testing';
import { encoderArgs, ffmpegPath } from '../apps/worker/src/media/video/ffmpeg.encoder';
import { GenerateImageModule } from '../apps/worker/src/processors/generate-image/generate-image.module';
import { GenerateImageProcessor } from '../apps/worker/src/processors/generate-image/generate-image.processor';
import { GenerateVideoModule } from '../apps/worker/src/processors/generate-video/generate-video.module';
import { GenerateVideoProcessor } from '../apps/worker/src/processors/generate-video/generate-video.processor';
import { ProcessAudioModule } from '../apps/worker/src/processors/process-audio/process-audio.module';
import { ProcessAudioProcessor } from '../apps/worker/src/processors/process-audio/process-audio.processor';
import { RenderAnimationModule } from '../apps/worker/src/processors/render-animation/render-animation.module';
import { RenderAnimationProcessor } from '../apps/worker/src/processors/render-animation/render-animation.processor';
import type { RunningTask, TaskOutput } from '../apps/worker/src/runtime/task-processor';
import { type BenchPart, type BenchRow, fmt, withTimeout } from './common';

/** Upper bound of one media task (a default video takes tens of seconds here). */
const TASK_TIMEOUT_MS = 240_000;

const DIALOGUE =
  'The rain had not stopped for three days, and the city smelled of wet stone and old secrets. ' +
  'Somewhere out there, a witness was lying, and I meant to find out why.';

/** A running task of `def` whose data is `input` parsed by the contract (defaults filled in). */
function task<T extends object>(def: TaskDefinition<T>, input: object): RunningTask<T> {
  return {
    taskId: `bench-${Date.now()}`,
    projectId: 'bench',
    taskType: def.type,
    attempt: 1,
    data: validateTaskData(def, input),
    signal: new AbortController().signal,
    progress: () => Promise.resolve(),
  };
}

async function timed(
  what: string,
  fn: () => Promise<TaskOutput>,
): Promise<{ s: number; out: TaskOutput }> {
  const t0 = performance.now();
  const out = await withTimeout(fn(), TASK_TIMEOUT_MS, what);
  return { s: (performance.now() - t0) / 1000, out };
}

/**
 * CPU seconds used so far by this process and by its children that have exited (ffmpeg), from
 * /proc (Linux; undefined elsewhere). Unlike wall time, this does not depend on what else the
 * machine runs meanwhile.
 */
function cpuSeconds(): number | undefined {
  try {
    // Fields after the command name: utime, stime, cutime, cstime are 14..17 of stat(5).
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : undefined;
  } catch {
    return undefined;
  }
}

/** Linux's USER_HZ (`getconf CLK_TCK`), the unit of /proc/self/stat times. */
const CLOCK_TICKS = 100;

/**
 * ffmpeg alone encoding the very frames our processor produced: the MP4 is decoded back to a raw
 * rgb24 file first (not timed), then encoded with the encoder's own arguments (timed).
 */
function ffmpegFloor(
  mp4: string,
  dir: string,
  size: string,
  fps: number,
): { s: number; cpu?: number; frames: number } {
  const ff = ffmpegPath();
  const raw = path.join(dir, 'frames.rgb');
  execFileSync(
    ff,
    ['-loglevel', 'error', '-i', mp4, '-map', '0:v', '-f', 'rawvideo'].concat([
      '-pix_fmt',
      'rgb24',
      '-y',
      raw,
    ]),
  );
  const [w, h] = size.split('x').map(Number);
  const frames = statSync(raw).size / (w * h * 3);
  const t0 = performance.now();
  const cpu0 = cpuSeconds();
  execFileSync(
    ff,
    encoderArgs({ width: w, height: h, fps, output: path.join(dir, 'floor.mp4') }, raw),
  );
  const s = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds();
  rmSync(raw, { force: true });
  return { s, cpu: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined, frames };
}

async function svgPng(w: number, h: number, body: string): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${body}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

async function storyboard(seed: number): Promise<Buffer> {
  const noise = await sharp({
    create: {
      width: 1920,
      height: 1080,
      channels: 3,
      noise: { type: 'gaussian', mean: 100 + seed * 20, sigma: 60 },
    },
    // sharp's types want a background even with noise, which fills the whole image.
  } as SharpOptions)
    .png()
    .toBuffer();
  return sharp(noise).blur(4).jpeg({ quality: 90 }).toBuffer();
}

/**
 * Which media figures to measure: all by default; `BENCH_MEDIA_PARTS=video` (comma-separated:
 * image, video, animation, dialogue) runs only those, e.g. while working on one processor.
 */
function wanted(part: string): boolean {
  const parts = process.env.BENCH_MEDIA_PARTS;
  return !parts || parts.split(',').some((p) => p.trim() === part);
}

/** Media: seconds per default image, video, animation and 10 s of dialogue, next to ffmpeg alone. */
export async function mediaBench(): Promise<BenchPart> {
  const rows: BenchRow[] = [];
  const notes: string[] = [];
  const dir = mkdtempSync(path.join(os.tmpdir(), 'movie-task-bench-media-'));
  const files = new TestFileServer();
  files.set('/f1.jpg', { body: await storyboard(0), contentType: 'image/jpeg' });
  files.set('/f2.jpg', { body: await storyboard(1), contentType: 'image/jpeg' });
  files.set('/char.png', {
    body: await svgPng(
      400,
      600,
      '<ellipse cx="200" cy="300" rx="180" ry="290" fill="#d08040"/><circle cx="200" cy="150" r="90" fill="#f0d0b0"/>',
    ),
    contentType: 'image/png',
  });
  files.set('/logo.png', {
    body: await svgPng(
      256,
      256,
      '<rect x="20" y="20" width="216" height="216" rx="40" fill="#2060c0"/>',
    ),
    contentType: 'image/png',
  });
  files.set('/prop.png', {
    body: await svgPng(300, 200, '<polygon points="0,200 150,0 300,200" fill="#30a050"/>'),
    contentType: 'image/png',
  });
  const base = await files.start();
  Logger.overrideLogger(['fatal', 'error']);
  const config = AppConfig.fromEnv({
    API_KEYS: 'bench-key',
    TFJS_BACKEND: process.env.TFJS_BACKEND ?? 'auto',
    STORAGE_LOCAL_DIR: dir,
    LOG_LEVEL: 'error',
    // The storyboard and layer images come from a file server on loopback.
    ALLOW_PRIVATE_URLS: 'true',
  });
  const moduleRef = await Test.createTestingModule({
    imports: [
      ConfigModule.forRoot(config),
      TestSigningKeysModule,
      GenerateImageModule,
      GenerateVideoModule,
      RenderAnimationModule,
      ProcessAudioModule,
    ],
  }).compile();
  moduleRef.useLogger(['fatal', 'error']);
  await moduleRef.init();
  try {
    const gpu = moduleRef.get(GpuService);
    const backend = gpu.backendName;
    notes.push(
      `media: tfjs backend \`${backend}\`; one timed run each after nothing but boot (cold caches count).`,
    );

    // Image: default 1024×1024 JPEG.
    if (wanted('image')) await imageFigures(moduleRef, backend, rows);
    if (wanted('video')) await videoFigures(moduleRef, base, dir, rows, notes);
    if (wanted('animation')) await animationFigures(moduleRef, base, dir, rows, notes);
    if (wanted('dialogue')) await dialogueFigures(moduleRef, backend, rows);
  } finally {
    await moduleRef.close();
    await files.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { rows, notes };
}

type Ref = Awaited<ReturnType<ReturnType<typeof Test.createTestingModule>['compile']>>;

async function imageFigures(moduleRef: Ref, backend: string, rows: BenchRow[]): Promise<void> {
  const image = moduleRef.get(GenerateImageProcessor);
  const img = await timed('default image', () =>
    image.process(
      task(GENERATE_IMAGE_TASK, {
        character_description: 'Detective in 1920s noir style',
        pose: 'standing_confident',
        lighting: 'dramatic_shadow',
      }),
    ),
  );
  rows.push({
    part: 'media',
    metric: `default image 1024² (${backend})`,
    value: `${fmt(img.s)} s`,
  });
}

async function videoFigures(
  moduleRef: Ref,
  base: string,
  dir: string,
  rows: BenchRow[],
  notes: string[],
): Promise<void> {
  // Video: default 7 s, 1920×1080, 24 fps from two storyboard frames.
  const video = moduleRef.get(GenerateVideoProcessor);
  const vidCpu0 = cpuSeconds();
  const vid = await timed('default video', () =>
    video.process(
      task(GENERATE_VIDEO_TASK, {
        storyboard_images: [`${base}/f1.jpg`, `${base}/f2.jpg`],
        scene_description: 'Detective enters the dark alley',
        camera_angle: 'wide_shot',
        lighting: 'noir_dramatic',
      }),
    ),
  );
  const vidPath = vid.out.media.kind === 'file' ? vid.out.media.path : '';
  const vidCpu1 = cpuSeconds();
  const vidFloor = ffmpegFloor(vidPath, dir, '1920x1080', 24);
  const vidRatio = vid.s / vidFloor.s;
  rows.push({
    part: 'media',
    metric: 'default video 7 s 1080p24 (WebAssembly SIMD kernel, no tfjs)',
    value: `${fmt(vid.s)} s`,
  });
  rows.push({
    part: 'media',
    metric: `ffmpeg-only encode of the same ${vidFloor.frames} frames`,
    value: `${fmt(vidFloor.s)} s`,
  });
  rows.push({
    part: 'media',
    metric: 'video ÷ ffmpeg-only',
    value: `${fmt(vidRatio)}×`,
    target: '≤ 1.5×',
    met: vidRatio <= 1.5,
  });
  if (vidCpu0 !== undefined && vidCpu1 !== undefined && vidFloor.cpu !== undefined) {
    const cpu = vidCpu1 - vidCpu0;
    rows.push({
      part: 'media',
      metric: 'CPU time: default video (worker + its ffmpeg) / ffmpeg-only',
      value: `${fmt(cpu)} s / ${fmt(vidFloor.cpu)} s (${fmt(cpu / vidFloor.cpu)}×)`,
    });
  }
  const renderMs = Number(vid.out.metadata.render_ms);
  if (Number.isFinite(renderMs)) {
    notes.push(
      `media: the video processor reports render_ms ${fmt(renderMs, 0)} of ${fmt(vid.s)} s in all (storyboard frames colour-graded once by plain loops; per frame one WebAssembly SIMD kernel — bilinear camera view at subpixel positions, crossfade and screen light fused — in a worker thread, while the event loop pipes the previous batch into libx264). ffmpeg-only decodes our MP4 back to a raw rgb24 file (untimed) and encodes it with the processor's own settings (libx264 veryfast, CRF 20, BT.709 yuv420p, +faststart), with both cores to itself; in the processor the frame work and libx264 share them.`,
    );
  }
  rmSync(vidPath, { force: true });
}

async function animationFigures(
  moduleRef: Ref,
  base: string,
  dir: string,
  rows: BenchRow[],
  notes: string[],
): Promise<void> {
  // Animation: 3 image layers over an image background, default length and size.
  const anim = moduleRef.get(RenderAnimationProcessor);
  const aniCpu0 = cpuSeconds();
  const ani = await timed('default animation', () =>
    anim.process(
      task(RENDER_ANIMATION_TASK, {
        background: `${base}/f1.jpg`,
        layers: [
          {
            image_url: `${base}/prop.png`,
            keyframes: [
              { time: 0, x: 300, y: 900 },
              { time: 7, x: 500, y: 880, scale: 1.2 },
            ],
          },
          {
            image_url: `${base}/char.png`,
            easing: 'ease_in_out',
            keyframes: [
              { time: 0, x: -200, y: 600 },
              { time: 3.5, x: 960, y: 560, rotation: 10 },
              { time: 7, x: 1500, y: 600, rotation: 0 },
            ],
          },
          {
            image_url: `${base}/logo.png`,
            easing: 'ease_out',
            keyframes: [
              { time: 0, x: 1700, y: 180, scale: 0.2, opacity: 0 },
              { time: 2, scale: 1, opacity: 1, rotation: 360 },
            ],
          },
        ],
      }),
    ),
  );
  const aniMeta = ani.out.metadata;
  const aniSize = typeof aniMeta.resolution === 'string' ? aniMeta.resolution : '1920x1080';
  const aniFps = typeof aniMeta.fps === 'number' ? aniMeta.fps : 24;
  const aniPath = ani.out.media.kind === 'file' ? ani.out.media.path : '';
  const aniCpu1 = cpuSeconds();
  const aniFloor = ffmpegFloor(aniPath, dir, aniSize, aniFps);
  rows.push({
    part: 'media',
    metric: `default animation, 3 layers, ${aniSize} ${aniFloor.frames} frames (typed-array loops, no tfjs)`,
    value: `${fmt(ani.s)} s`,
  });
  rows.push({
    part: 'media',
    metric: 'ffmpeg-only encode of the same animation frames',
    value: `${fmt(aniFloor.s)} s (ratio ${fmt(ani.s / aniFloor.s)}×)`,
  });
  if (aniCpu0 !== undefined && aniCpu1 !== undefined && aniFloor.cpu !== undefined) {
    const cpu = aniCpu1 - aniCpu0;
    rows.push({
      part: 'media',
      metric: 'CPU time: default animation (worker + its ffmpeg) / ffmpeg-only',
      value: `${fmt(cpu)} s / ${fmt(aniFloor.cpu)} s (${fmt(cpu / aniFloor.cpu)}×)`,
    });
  }
  const renderMs = Number(aniMeta.render_ms);
  if (Number.isFinite(renderMs)) {
    notes.push(
      `media: the animation processor reports render_ms ${fmt(renderMs, 0)} of ${fmt(ani.s)} s in all (layers and background decoded once; per frame the backdrop is copied and each layer is warped — bilinear, affine per frame — and blended over with premultiplied alpha by plain typed-array loops over only the pixels it can cover, on the event loop between writes of 4-frame batches into libx264; no tfjs). ffmpeg-only is measured as for the video.`,
    );
  }
  rmSync(aniPath, { force: true });
}

async function dialogueFigures(moduleRef: Ref, backend: string, rows: BenchRow[]): Promise<void> {
  // Dialogue: a warm-up line (engine load), then the timed line, scaled to 10 s of audio.
  const audio = moduleRef.get(ProcessAudioProcessor);
  await timed('dialogue warm-up', () =>
    audio.process(task(PROCESS_AUDIO_TASK, { text: 'Warm up.' })),
  );
  const dlg = await timed('dialogue', () =>
    audio.process(task(PROCESS_AUDIO_TASK, { text: DIALOGUE })),
  );
  const dur = Number(dlg.out.metadata.duration);
  rows.push({
    part: 'media',
    metric: `dialogue, default MP3 (${fmt(dur, 1)} s of audio, ${backend})`,
    value: `${fmt((dlg.s * 10) / dur)} s per 10 s of audio`,
  });
}
