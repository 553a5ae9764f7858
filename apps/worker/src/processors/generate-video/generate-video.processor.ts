import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import type * as TfCore from '@tensorflow/tfjs-core';
import { GpuService, type TensorScope } from '@app/gpu';
import { InputFetcher } from '@app/storage';
import { parseResolution, videoTiming, type GenerateVideoTaskData } from '@app/tasks';
import {
  cameraBox,
  type CameraBox,
  cameraPresetFor,
  maxZoom,
  subjectFocus,
} from '../../media/video/camera.path';
import { FfmpegEncoder } from '../../media/video/ffmpeg.encoder';
import {
  cameraFrames,
  framesPerBatch,
  toRgb24,
  type CameraFrame,
} from '../../media/video/frame.compositor';
import { gradeColours, sceneGradeFor, screenLight } from '../../media/video/scene.lighting';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';
import { mixAmbience, planAmbience } from './ambience.track';
import { ShotTimeline, type ShotAt } from './shot.timeline';
import { Storyboard } from './storyboard.source';

export const VIDEO_MODEL = 'storyboard-camera-v1';

const AUDIO_SAMPLE_RATE = 48_000;
/** Sources keep detail for zooms up to this, within a 4K-sized decode per storyboard frame. */
const MAX_SOURCE_SCALE = 1.5;
const MAX_SOURCE_PIXELS = 3840 * 2160;

// Progress milestones; frames fill RENDER_FROM .. RENDER_TO, the mux ends at ENCODED.
const LOADED = 0.05;
const RENDER_FROM = 0.2;
const RENDER_TO = 0.9;
const ENCODED = 0.94;

/**
 * Video segments from storyboard frames: a virtual camera moves over each frame as the preset
 * says (crop-and-resize on tfjs), shots crossfade, the light is graded, and frames stream into
 * ffmpeg in small batches; known audio cues become a synthesized ambience track.
 */
@TaskProcessorFor('generate_video')
export class GenerateVideoProcessor implements TaskProcessor<GenerateVideoTaskData> {
  private readonly logger = new Logger(GenerateVideoProcessor.name);

  constructor(
    private readonly gpu: GpuService,
    private readonly inputs: InputFetcher,
  ) {}

  async process(task: RunningTask<GenerateVideoTaskData>): Promise<TaskOutput> {
    const data = task.data;
    const { width, height } = parseResolution(data.resolution);
    const { fps, frames, duration } = videoTiming(data.duration, data.fps);
    const camera = cameraPresetFor(data.camera_angle);
    const grade = sceneGradeFor(data.lighting);
    const subject = subjectFocus(data.character_positions);
    const sound = planAmbience(data.audio_cues);
    const tag = `task_id=${task.taskId} project_id=${task.projectId}`;
    task.signal.throwIfAborted();
    const started = Date.now();

    await task.progress(0.01, 'loading_models');
    await this.gpu.init();
    const tf = this.gpu.tf;
    const base = path.join(
      os.tmpdir(),
      `ams-video-${task.taskId}-${randomBytes(4).toString('hex')}`,
    );
    const output = `${base}.mp4`;
    const audioPath = `${base}.f32`;

    const render = this.gpu.scoped(`generate_video ${tag}`, async (scope) => {
      const light = scope.keep(scope.tidy(() => screenLight(tf, grade, width, height, 255)));
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
            LOADED + ((RENDER_FROM - LOADED) * 0.8 * done) / data.storyboard_images.length,
            'processing_storyboard',
          ),
      });
      const cap = Math.min(
        MAX_SOURCE_SCALE,
        maxZoom(camera),
        Math.sqrt(MAX_SOURCE_PIXELS / (width * height)),
      );
      const scale = storyboard.sourceScale(width, height, cap);
      const source = { width: Math.round(width * scale), height: Math.round(height * scale) };
      storyboard.useSourceSize(source.width, source.height);
      const shots = new ShotSources(tf, scope, storyboard, source, (bytes) =>
        gradeColours(tf, grade, bytes, 1 / 255),
      );
      await shots.prepare([0]);
      task.signal.throwIfAborted();

      let audio: { seconds: number } | undefined;
      if (sound.ambiences.length > 0) {
        const pcm = mixAmbience(sound.ambiences, duration, AUDIO_SAMPLE_RATE, seedOf(data));
        await writeFile(audioPath, Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength));
        audio = { seconds: pcm.length / AUDIO_SAMPLE_RATE };
      }
      await task.progress(RENDER_FROM, 'processing_storyboard');

      // generating_video: batches of frames stream into ffmpeg as they are made.
      const timeline = new ShotTimeline(storyboard.length, duration);
      const encoder = FfmpegEncoder.start({
        width,
        height,
        fps,
        output,
        signal: task.signal,
        audio: audio ? { path: audioPath, sampleRate: AUDIO_SAMPLE_RATE, channels: 1 } : undefined,
      });
      const batch = framesPerBatch(width, height);
      // Where the time goes (logged): tensor work incl. readback, waiting for ffmpeg, decoding.
      let renderMs = 0;
      let encodeWaitMs = 0;
      let prepareMs = 0;
      try {
        await task.progress(RENDER_FROM, 'generating_video');
        for (let first = 0; first < frames; first += batch) {
          task.signal.throwIfAborted();
          const plan: PlannedFrame[] = [];
          for (let f = first; f < Math.min(frames, first + batch); f++) {
            const at = timeline.at(f / fps);
            plan.push({
              box: cameraBox(camera, frames > 1 ? f / (frames - 1) : 0, duration, subject),
              ...at,
            });
          }
          const needed = [
            ...new Set(plan.flatMap((p) => (p.next ? [p.shot, p.next.shot] : [p.shot]))),
          ];
          const t0 = Date.now();
          await shots.prepare(needed);
          task.signal.throwIfAborted();
          const t1 = Date.now();
          const bytes = shots.render(needed, plan, light);
          const t2 = Date.now();
          await encoder.write(bytes);
          prepareMs += t1 - t0;
          renderMs += t2 - t1;
          encodeWaitMs += Date.now() - t2;

          const done = Math.min(frames, first + batch);
          await task.progress(
            RENDER_FROM + ((RENDER_TO - RENDER_FROM) * done) / frames,
            'generating_video',
          );
          shots.releaseBefore(Math.min(...needed));
        }
        const t3 = Date.now();
        await encoder.finish();
        encodeWaitMs += Date.now() - t3;
      } catch (err) {
        // Kills ffmpeg (if the abort signal has not already) and waits until it is gone.
        await encoder.abort();
        throw err;
      }
      return { renderMs, encodeWaitMs, prepareMs, source, audio };
    });
    let stats: Awaited<typeof render>;
    try {
      stats = await render;
    } catch (err) {
      await rm(output, { force: true });
      throw err;
    } finally {
      await rm(audioPath, { force: true });
    }
    await task.progress(ENCODED, 'generating_video');

    const elapsed = Date.now() - started;
    this.logger.log(
      `${tag}: ${frames} frames ${width}x${height}@${fps} (${duration.toFixed(2)} s) in ${elapsed} ms ` +
        `on ${this.gpu.backendName} (frames ${stats.renderMs} ms, waiting for ffmpeg ` +
        `${stats.encodeWaitMs} ms, shots ${stats.prepareMs} ms; sources ` +
        `${stats.source.width}x${stats.source.height}), camera ${camera}, ` +
        `lighting ${grade.preset}, ambience ${sound.ambiences.join('+') || 'none'}`,
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
        backend: this.gpu.backendName,
        model: VIDEO_MODEL,
        scene_description: data.scene_description,
        storyboard_frames: data.storyboard_images.length,
        camera_angle: data.camera_angle ?? null,
        camera_preset: camera,
        lighting: data.lighting ?? null,
        lighting_preset: grade.preset,
        character_positions: data.character_positions ?? [],
        audio_cues: data.audio_cues ?? [],
        ambience: sound.ambiences,
        ignored_audio_cues: sound.ignored,
        render_ms: elapsed,
      },
    };
  }
}

/** One output frame: where the camera looks and which shot(s) it sees. */
interface PlannedFrame extends ShotAt {
  box: CameraBox;
}

/**
 * Graded storyboard frames as tensors ([1, h, w, 3], 0..1), made when the camera first needs
 * them (the next one is decoded ahead in sharp's thread pool) and released once it has passed.
 */
class ShotSources {
  private readonly tensors = new Map<number, TfCore.Tensor4D>();
  private bytes?: Uint8Array;

  constructor(
    private readonly tf: typeof TfCore,
    private readonly scope: TensorScope,
    private readonly storyboard: Storyboard,
    private readonly size: { width: number; height: number },
    /** Byte-valued pixels → graded 0..1. */
    private readonly grade: (bytes: TfCore.Tensor4D) => TfCore.Tensor4D,
  ) {}

  async prepare(shots: readonly number[]): Promise<void> {
    for (const shot of shots) {
      if (this.tensors.has(shot)) continue;
      const bytes = await this.storyboard.decode(shot);
      const { width, height } = this.size;
      const tensor = this.scope.tidy(() =>
        this.grade(this.tf.tensor4d(new Float32Array(bytes), [1, height, width, 3])),
      );
      this.tensors.set(shot, this.scope.keep(tensor));
    }
    // Decode the shot after the last one needed while this batch renders.
    const ahead = Math.max(...shots) + 1;
    if (ahead < this.storyboard.length && !this.tensors.has(ahead))
      void this.storyboard.decode(ahead);
  }

  /** Renders the planned frames from the prepared shots `needed`; returns rgb24 bytes. */
  render(
    needed: readonly number[],
    plan: readonly PlannedFrame[],
    light: TfCore.Tensor4D,
  ): Uint8Array {
    const tf = this.tf;
    const slot = new Map(needed.map((shot, i) => [shot, i]));
    const frames: CameraFrame[] = plan.map((p) => ({
      box: p.box,
      source: slot.get(p.shot)!,
      next: p.next ? { source: slot.get(p.next.shot)!, weight: p.next.weight } : undefined,
    }));
    const out = this.scope.tidy(() => {
      const parts = needed.map((shot) => this.tensors.get(shot)!);
      const sources = parts.length === 1 ? parts[0] : tf.concat(parts, 0);
      return cameraFrames(tf, sources, frames, light);
    });
    try {
      // One buffer for the whole run: the encoder has taken each batch before the next is made.
      if (!this.bytes || this.bytes.length < out.size) this.bytes = new Uint8Array(out.size);
      return toRgb24(tf, out, this.bytes);
    } finally {
      out.dispose();
    }
  }

  releaseBefore(shot: number): void {
    for (const [k, tensor] of this.tensors) {
      if (k < shot) {
        this.scope.release(tensor);
        this.tensors.delete(k);
      }
    }
    this.storyboard.forgetBefore(shot);
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
