import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import {
  GENERATE_VIDEO_TASK,
  parseResolution,
  videoTiming,
  type GenerateVideoTaskData,
} from '@app/tasks';
import { InputFetcher } from '../../inputs/input-fetcher';
import { FaceAnalyzer } from '../../media/faces/face.analyzer';
import {
  cameraBox,
  type CameraBox,
  cameraPresetFor,
  type FramePoint,
  maxZoom,
  subjectFocus,
} from '../../media/video/camera.path';
import { cameraFramesPerBatch, CameraRenderer, type RgbImage } from '../../media/video/camera.view';
import { FfmpegEncoder } from '../../media/video/ffmpeg.encoder';
import { gradeBytes, sceneGradeFor, screenGains } from '../../media/video/scene.lighting';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';
import { mixAmbience, planAmbience } from './ambience.track';
import { frameFaces, type FaceFraming } from './face.framing';
import { ShotTimeline, type ShotAt } from './shot.timeline';
import { Storyboard } from './storyboard.source';

export const VIDEO_MODEL = 'storyboard-camera-v1';

const AUDIO_SAMPLE_RATE = 48_000;
/**
 * Storyboard frames are decoded at the camera's largest zoom, up to this and within a 4K-sized
 * decode: then camera views keep their detail and only reduce, by at most 1.5:1 (where the
 * camera kernel's two-tap bilinear filter aliases only mildly), or copy; a small input is
 * enlarged once, in the decode.
 */
const MAX_SOURCE_SCALE = 1.5;
const MAX_SOURCE_PIXELS = 3840 * 2160;

// Progress milestones; frames fill RENDER_FROM .. RENDER_TO, the mux ends at ENCODED.
const LOADED = 0.05;
const RENDER_FROM = 0.2;
const RENDER_TO = 0.9;
const ENCODED = 0.94;
/** Share of LOADED..RENDER_FROM the fetches fill (face framing fills the rest but a little). */
const FETCH_SHARE = 0.8;

/**
 * Video segments from storyboard frames: each storyboard frame is colour-graded once, a
 * virtual camera moves over it as the preset says, shots crossfade and the screen light (key
 * light, blinds, vignette) multiplies every frame — one fused WebAssembly SIMD kernel per output
 * frame (bilinear resample at subpixel camera positions, crossfade, light) — and frames stream
 * into ffmpeg in small batches; known audio cues become a synthesized ambience track.
 */
@TaskProcessorFor(GENERATE_VIDEO_TASK)
export class GenerateVideoProcessor implements TaskProcessor<GenerateVideoTaskData> {
  private readonly logger = new Logger(GenerateVideoProcessor.name);

  constructor(
    private readonly inputs: InputFetcher,
    private readonly faces: FaceAnalyzer,
  ) {}

  async process(task: RunningTask<GenerateVideoTaskData>): Promise<TaskOutput> {
    const data = task.data;
    const { width, height } = parseResolution(data.resolution);
    const { fps, frames, duration } = videoTiming(data.duration, data.fps);
    const camera = cameraPresetFor(data.camera_angle);
    const grade = sceneGradeFor(data.lighting);
    const subject = subjectFocus(data.character_positions);
    const sound = planAmbience(data.audio_cues);
    const fields = { task_id: task.taskId, project_id: task.projectId };
    task.signal.throwIfAborted();
    const started = Date.now();

    await task.progress(0.01, 'loading_models');
    const base = path.join(
      os.tmpdir(),
      `movie-task-video-${task.taskId}-${randomBytes(4).toString('hex')}`,
    );
    const output = `${base}.mp4`;
    const audioPath = `${base}.f32`;

    const render = (async () => {
      await task.progress(LOADED, 'loading_models');

      // processing_storyboard: fetch and check every frame, decode the first ones.
      await task.progress(LOADED, 'processing_storyboard');
      const storyboard = await Storyboard.fetch({
        fetcher: this.inputs,
        urls: data.storyboard_images,
        projectId: task.projectId,
        signal: task.signal,
        onFetched: (done) =>
          task.progress(
            LOADED + ((RENDER_FROM - LOADED) * FETCH_SHARE * done) / data.storyboard_images.length,
            'processing_storyboard',
          ),
      });
      const scale = Math.max(
        1,
        Math.min(
          MAX_SOURCE_SCALE,
          maxZoom(camera),
          Math.sqrt(MAX_SOURCE_PIXELS / (width * height)),
        ),
      );
      const source = { width: Math.round(width * scale), height: Math.round(height * scale) };
      storyboard.useSourceSize(source.width, source.height);
      // framing: faces — one face detection per storyboard frame, before any frame is rendered.
      let faceFraming: FaceFraming | undefined;
      if (data.framing === 'faces') {
        const from = LOADED + (RENDER_FROM - LOADED) * FETCH_SHARE;
        const unique = new Set(data.storyboard_images).size;
        faceFraming = await frameFaces(this.faces, storyboard.inputs, source, {
          signal: task.signal,
          onFrame: (done) =>
            task.progress(
              from + ((RENDER_FROM - from) * 0.9 * done) / unique,
              'processing_storyboard',
            ),
        });
      }
      // Where the camera centres in each shot: its faces, else the character positions.
      const focus: FramePoint[] = Array.from(
        { length: storyboard.length },
        (_, i) => faceFraming?.frames[i].focus ?? subject,
      );
      const shots = new ShotSources(storyboard, source, (bytes) => gradeBytes(grade, bytes));
      // The first frame decodes in sharp's thread pool while the screen light is made, once:
      // fixed-point gains every output frame is multiplied by.
      void storyboard.decode(0);
      const gains = screenGains(grade, width, height);
      await shots.prepare([0]);
      task.signal.throwIfAborted();

      let audio: { seconds: number } | undefined;
      if (sound.ambiences.length > 0) {
        const pcm = mixAmbience(sound.ambiences, duration, AUDIO_SAMPLE_RATE, seedOf(data));
        await writeFile(audioPath, Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength));
        audio = { seconds: pcm.length / AUDIO_SAMPLE_RATE };
      }
      await task.progress(RENDER_FROM, 'processing_storyboard');

      // generating_video: batches of frames stream into ffmpeg as they are made. The renderer
      // (a worker thread) has two batches of output slots: the next batch is rendered while the
      // event loop streams this one into ffmpeg.
      const batch = cameraFramesPerBatch(width, height);
      const timeline = new ShotTimeline(storyboard.length, duration);
      const encoder = FfmpegEncoder.start({
        width,
        height,
        fps,
        output,
        signal: task.signal,
        audio: audio ? { path: audioPath, sampleRate: AUDIO_SAMPLE_RATE, channels: 1 } : undefined,
      });
      // Where the time goes (logged): preparing shots (decoding and grading), rendering frames,
      // waiting for ffmpeg.
      let prepareMs = 0;
      let renderMs = 0;
      let encodeWaitMs = 0;
      let written: Promise<void> | undefined;
      let renderer: CameraRenderer | undefined;
      const setupMs = Date.now() - started;
      try {
        const slotCount = 2 * Math.min(frames, batch);
        const view = await CameraRenderer.start(gains, width, height, source, slotCount);
        renderer = view;
        await task.progress(RENDER_FROM, 'generating_video');
        for (let first = 0, round = 0; first < frames; first += batch, round++) {
          task.signal.throwIfAborted();
          const t0 = Date.now();
          const plan: PlannedFrame[] = [];
          for (let f = first; f < Math.min(frames, first + batch); f++) {
            const at = timeline.at(f / fps);
            // During a crossfade the camera glides from one shot's focus to the next one's.
            const aim = at.next
              ? lerpPoint(focus[at.shot], focus[at.next.shot], at.next.weight)
              : focus[at.shot];
            const u = frames > 1 ? f / (frames - 1) : 0;
            plan.push({
              box: cameraBox(camera, u, duration, aim, faceFraming !== undefined),
              ...at,
            });
          }
          await shots.prepareFor(plan);
          task.signal.throwIfAborted();
          const t1 = Date.now();
          const slots = (round & 1) * batch;
          await Promise.all(
            plan.map((p, i) => {
              const next = p.next && p.next.weight > 0 ? p.next : undefined;
              return view.render(
                slots + i,
                p.box,
                shots.image(p.shot),
                next && { image: shots.image(next.shot), weight: next.weight },
              );
            }),
          );
          const t2 = Date.now();
          // The slots written two rounds ago are free once the previous write is done.
          await written;
          written = encoder.write(view.output(slots, plan.length));
          // Awaited in the next round; until then a failure must not count as unhandled.
          written.catch(() => undefined);
          prepareMs += t1 - t0;
          renderMs += t2 - t1;
          encodeWaitMs += Date.now() - t2;

          const done = Math.min(frames, first + batch);
          await task.progress(
            RENDER_FROM + ((RENDER_TO - RENDER_FROM) * done) / frames,
            'generating_video',
          );
        }
        const t3 = Date.now();
        await written;
        await encoder.finish();
        encodeWaitMs += Date.now() - t3;
      } catch (err) {
        // Kills ffmpeg (if the abort signal has not already) and waits until it is gone.
        await Promise.all([encoder.abort(), written?.catch(() => undefined)]);
        throw err;
      } finally {
        await renderer?.close();
      }
      return {
        setupMs,
        prepareMs,
        renderMs,
        encodeWaitMs,
        source,
        audio,
        simd: renderer?.simd,
        faceFraming,
      };
    })();
    let stats: Awaited<typeof render>;
    try {
      stats = await render;
      // Inside the try: a cancel this report learns of must not leave the encoded file behind.
      await task.progress(ENCODED, 'generating_video');
    } catch (err) {
      await rm(output, { force: true });
      throw err;
    } finally {
      await rm(audioPath, { force: true });
    }

    const elapsed = Date.now() - started;
    this.logger.log(
      fields,
      `${frames} frames ${width}x${height}@${fps} (${duration.toFixed(2)} s) in ${elapsed} ms ` +
        `(set-up ${stats.setupMs} ms, preparing shots ${stats.prepareMs} ms, rendering frames ` +
        `${stats.renderMs} ms${stats.simd ? '' : ' without WebAssembly SIMD'}, ` +
        `waiting for ffmpeg ${stats.encodeWaitMs} ms; sources ` +
        `${stats.source.width}x${stats.source.height}), camera ${camera}, ` +
        `lighting ${grade.preset}, ambience ${sound.ambiences.join('+') || 'none'}, framing ` +
        `${data.framing}${stats.faceFraming ? ` (faces ${stats.faceFraming.frames.map((f) => f.faces).join(',')})` : ''}`,
    );
    return {
      media: { kind: 'file', path: output, extension: 'mp4', contentType: 'video/mp4' },
      metadata: {
        duration: Number(duration.toFixed(3)),
        resolution: `${width}x${height}`,
        fps,
        frames,
        format: 'MP4',
        codec: 'h264',
        pixel_format: 'yuv420p',
        audio_codec: stats.audio ? 'aac' : null,
        // Grading and frames run in plain loops and a WebAssembly kernel, not on tfjs.
        backend: 'cpu',
        model: VIDEO_MODEL,
        scene_description: data.scene_description,
        storyboard_frames: data.storyboard_images.length,
        camera_angle: data.camera_angle,
        camera_preset: camera,
        lighting: data.lighting,
        lighting_preset: grade.preset,
        character_positions: data.character_positions ?? [],
        framing: data.framing,
        ...(stats.faceFraming ? faceFramingMetadata(stats.faceFraming) : {}),
        audio_cues: data.audio_cues ?? [],
        ambience: sound.ambiences,
        ignored_audio_cues: sound.ignored,
        render_ms: elapsed,
      },
    };
  }
}

/**
 * What face framing found, for result.metadata: faces per storyboard frame, what each frame was
 * framed on (`positions` where no face was found, the fallback), and the focus used.
 */
function faceFramingMetadata(framing: FaceFraming): Record<string, unknown> {
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    faces_per_frame: framing.frames.map((f) => f.faces),
    framing_per_frame: framing.frames.map((f) => (f.focus ? 'faces' : 'positions')),
    face_focus_per_frame: framing.frames.map((f) =>
      f.focus ? { x: round(f.focus.x), y: round(f.focus.y) } : null,
    ),
    framing_fallback_frames: framing.frames.flatMap((f, i) => (f.focus ? [] : [i])),
    face_model: `${framing.model.name}@${framing.model.version}`,
  };
}

function lerpPoint(a: FramePoint, b: FramePoint, u: number): FramePoint {
  return { x: a.x + (b.x - a.x) * u, y: a.y + (b.y - a.y) * u };
}

/** One output frame: where the camera looks and which shot(s) it sees. */
interface PlannedFrame extends ShotAt {
  box: CameraBox;
}

/**
 * Graded storyboard frames as rgb24 at the source size: decoded when the camera first needs them
 * (the next one is decoded ahead in sharp's thread pool), colour-graded once (`gradeBytes`), released
 * once the camera has passed them.
 */
class ShotSources {
  private readonly images = new Map<number, RgbImage>();

  constructor(
    private readonly storyboard: Storyboard,
    private readonly size: { width: number; height: number },
    /** Decoded rgb24 pixels → graded rgb24 pixels. */
    private readonly grade: (bytes: Uint8Array) => Uint8Array,
  ) {}

  async prepare(shots: readonly number[]): Promise<void> {
    for (const shot of shots) {
      if (this.images.has(shot)) continue;
      const bytes = await this.storyboard.decode(shot);
      const { width, height } = this.size;
      this.images.set(shot, { data: this.grade(bytes), width, height });
    }
    // Decode the shot after the last one needed while this batch renders.
    const ahead = Math.max(...shots) + 1;
    if (ahead < this.storyboard.length && !this.images.has(ahead))
      void this.storyboard.decode(ahead);
  }

  /** Prepares the shots `plan` shows and releases those before them. */
  async prepareFor(plan: readonly PlannedFrame[]): Promise<void> {
    const needed = [...new Set(plan.flatMap((p) => (p.next ? [p.shot, p.next.shot] : [p.shot])))];
    const first = Math.min(...needed);
    for (const k of this.images.keys()) if (k < first) this.images.delete(k);
    this.storyboard.forgetBefore(first);
    await this.prepare(needed);
  }

  /** A prepared shot. */
  image(shot: number): RgbImage {
    const image = this.images.get(shot);
    if (!image) throw new Error(`shot ${shot} was not prepared`);
    return image;
  }
}

/** A stable seed from the request, so the same task gives the same sound bed. */
function seedOf(data: GenerateVideoTaskData): number {
  let h = 0x811c9dc5;
  const text = JSON.stringify([data.scene_description, data.storyboard_images, data.audio_cues]);
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
