import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { GpuService } from '@app/gpu';
import { runTaskToEnd, TestFileServer, waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { extractFrame, probeMedia } from '../src/media/video/media.probe';

/** Processes whose command line mentions `text` (ffmpeg's carries the task id in its output path). */
function processesMentioning(text: string): Promise<number[]> {
  return new Promise((resolve, reject) => {
    // execFile, not a shell: a shell's own command line would match the pattern.
    execFile('pgrep', ['-f', text], (err, stdout) => {
      // pgrep exits 1 when nothing matches.
      if (err && err.code !== 1) reject(new Error(`pgrep failed: ${err.message}`));
      else resolve(stdout.split('\n').filter(Boolean).map(Number));
    });
  });
}

/** A storyboard frame with structure: a diagonal gradient in one hue and a bright block. */
async function storyboardFrame(hue: [number, number, number], width = 640, height = 360) {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const k = 0.25 + (0.75 * (x + y)) / (width + height);
      const block = x > width * 0.4 && x < width * 0.6 && y > height * 0.3 && y < height * 0.8;
      const at = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) raw[at + c] = block ? 240 : hue[c] * k;
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

/** Seed 004 scenario 1 end to end: real API, real worker (tfjs + ffmpeg), real HTTP inputs. */
describe('generate_video end to end', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'gpu_heavy' } });
  const files = new TestFileServer();
  const downloads: string[] = [];
  let base = '';

  beforeAll(async () => {
    files.set('/frame1.jpg', {
      body: await storyboardFrame([200, 60, 40]),
      contentType: 'image/jpeg',
    });
    files.set('/frame2.jpg', {
      body: await storyboardFrame([40, 80, 210]),
      contentType: 'image/jpeg',
    });
    files.set('/frame3.png', {
      body: await sharp(await storyboardFrame([60, 190, 70], 400, 400))
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    base = await files.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await files.stop();
    await Promise.all(downloads.map((f) => rm(f, { force: true })));
  });

  const run = (body: unknown, timeoutMs = 110_000) =>
    runTaskToEnd(service.http, body, { timeoutMs });

  /** Downloads the result through its signed URL; checks type and size on the way. */
  const download = async (final: {
    result: { media_url: string; metadata: { file_size: number } };
  }) => {
    const media = await fetch(final.result.media_url);
    expect(media.status).toBe(200);
    expect(media.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await media.arrayBuffer());
    expect(bytes.length).toBe(final.result.metadata.file_size);
    const file = path.join(os.tmpdir(), `video-e2e-${randomBytes(4).toString('hex')}.mp4`);
    await writeFile(file, bytes);
    downloads.push(file);
    return file;
  };

  it('scenario 1: the default 7 s, 168-frame, 1920x1080 MP4 with a synthesized ambience track', async () => {
    const { id, submitted, final, seen } = await run({
      project_id: 'detective_series_001',
      task_type: 'generate_video',
      task_data: {
        storyboard_images: [`${base}/frame1.jpg`, `${base}/frame2.jpg`],
        scene_description: 'Detective enters the dark alley',
        camera_angle: 'wide_shot',
        lighting: 'noir_dramatic',
        character_positions: ['detective_center'],
        audio_cues: ['footsteps', 'rain_ambience', 'thunder_crack'],
      },
      priority: 1,
      metadata: { user_id: 'user123', agent_id: 'video_generation_agent', scene_id: 'scene_005' },
    });
    expect(submitted).toMatchObject({ status: 'queued', estimated_duration: expect.any(Number) });
    expect(final).toMatchObject({
      status: 'completed',
      progress: 1,
      current_step: 'upload_complete',
    });
    expect(final.result.metadata).toMatchObject({
      duration: 7,
      resolution: '1920x1080',
      fps: 24,
      frames: 168,
      format: 'MP4',
      codec: 'h264',
      audio_codec: 'aac',
      backend: 'cpu',
      file_size: expect.any(Number),
      camera_preset: 'wide_shot',
      lighting_preset: 'noir_dramatic',
      ambience: ['footsteps', 'rain_ambience'],
      ignored_audio_cues: ['thunder_crack'],
    });
    expect(final.result.media_url).toContain(
      `/projects/detective_series_001/video/${id}/output.mp4`,
    );
    // Storyboard frames really came over HTTP, once each.
    expect(files.hits.get('/frame1.jpg')).toBe(1);
    expect(files.hits.get('/frame2.jpg')).toBe(1);

    const progresses = seen.map((s) => s.progress);
    expect(progresses).toEqual([...progresses].sort((a, b) => a - b));
    const steps = seen.map((s) => s.step);
    expect(steps).toContain('generating_video');
    // Progress moves with the frames: several distinct values while generating.
    const generating = new Set(
      seen.filter((s) => s.step === 'generating_video').map((s) => s.progress),
    );
    expect(generating.size).toBeGreaterThan(3);

    const file = await download(final);
    const probed = await probeMedia(file);
    expect(probed.video).toEqual({
      codec: 'h264',
      pixelFormat: 'yuv420p',
      width: 1920,
      height: 1080,
      fps: 24,
      frames: 168,
    });
    expect(Math.abs(probed.duration - 7)).toBeLessThanOrEqual(1 / 24);
    expect(probed.audio).toMatchObject({ codec: 'aac', sampleRate: 48_000 });
    // A picture, graded black and white (noir), not a flat fill.
    const frame = await extractFrame(file, 40, { width: 1920, height: 1080 });
    let sum = 0;
    let sumSq = 0;
    let chroma = 0;
    for (let i = 0; i < frame.length; i += 3) {
      sum += frame[i + 1];
      sumSq += frame[i + 1] ** 2;
      chroma += Math.abs(frame[i] - frame[i + 2]);
    }
    const n = frame.length / 3;
    expect(Math.sqrt(sumSq / n - (sum / n) ** 2)).toBeGreaterThan(15);
    expect(chroma / n).toBeLessThan(12);
  });

  it('honours resolution, duration, fps, camera and lighting; no known cue, no audio track', async () => {
    const { final } = await run({
      project_id: 'small_videos',
      task_type: 'generate_video',
      task_data: {
        storyboard_images: [`${base}/frame1.jpg`, `${base}/frame3.png`, `${base}/frame2.jpg`],
        scene_description: 'The chase crosses the market',
        camera_angle: 'pan_right',
        lighting: 'golden_hour',
        audio_cues: ['dramatic music'],
        resolution: '320x180',
        duration: 2,
        fps: 30,
      },
    });
    expect(final.status).toBe('completed');
    expect(final.result.metadata).toMatchObject({
      duration: 2,
      resolution: '320x180',
      fps: 30,
      frames: 60,
      audio_codec: null,
      camera_preset: 'pan_right',
      lighting_preset: 'golden_hour',
      ignored_audio_cues: ['dramatic music'],
    });
    const file = await download(final);
    const probed = await probeMedia(file);
    expect(probed.video).toEqual({
      codec: 'h264',
      pixelFormat: 'yuv420p',
      width: 320,
      height: 180,
      fps: 30,
      frames: 60,
    });
    expect(probed.audio).toBeUndefined();
    expect(Math.abs(probed.duration - 2)).toBeLessThanOrEqual(1 / 30);
    // Three shots in order: red, green, blue dominate the first, middle and last frames.
    const size = { width: 320, height: 180 };
    const mean = (f: Buffer) => {
      const m = [0, 0, 0];
      for (let i = 0; i < f.length; i++) m[i % 3] += f[i];
      return m;
    };
    const [r0, , b0] = mean(await extractFrame(file, 2, size));
    const [r1, g1, b1] = mean(await extractFrame(file, 30, size));
    const [r2, , b2] = mean(await extractFrame(file, 58, size));
    expect(r0).toBeGreaterThan(b0);
    expect(g1).toBeGreaterThan(Math.max(r1, b1));
    expect(b2).toBeGreaterThan(r2);
  });

  it('cancelling a running video stops it within a second: ffmpeg gone, tensors back to baseline', async () => {
    const gpu = service.worker!.get(GpuService);
    const baseline = gpu.tensorCount();
    const submitted = await service.http.post('/tasks/submit', {
      project_id: 'small_videos',
      task_type: 'generate_video',
      task_data: {
        storyboard_images: [`${base}/frame1.jpg`, `${base}/frame2.jpg`],
        scene_description: 'A long take that will be cut short',
        camera_angle: 'dolly_in',
        audio_cues: ['rain_ambience'],
        resolution: '1280x720',
        duration: 30,
      },
    });
    const id = submitted.body.task_id as string;
    await waitFor(
      async () => {
        const s = (await service.http.get(`/tasks/${id}/status`)).body;
        return s.current_step === 'generating_video' && s.progress > 0.25 ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 25, what: 'frames being generated' },
    );
    // The encoder is running now, writing to a file named after the task.
    expect((await processesMentioning(id)).length).toBeGreaterThan(0);

    const cancelledAt = Date.now();
    expect((await service.http.delete(`/tasks/${id}/cancel`)).status).toBe(200);
    await waitFor(
      async () => {
        const s = (await service.http.get(`/tasks/${id}/status`)).body;
        if (s.status !== 'cancelled') return undefined;
        if ((await processesMentioning(id)).length > 0) return undefined;
        return gpu.tensorCount() === baseline ? true : undefined;
      },
      { timeoutMs: 3000, intervalMs: 10, what: 'cancel, no ffmpeg, tensor baseline' },
    );
    expect(Date.now() - cancelledAt).toBeLessThan(1000);
    const s = (await service.http.get(`/tasks/${id}/status`)).body;
    expect(s).toMatchObject({ status: 'cancelled', result: null });
    // No temp files left behind (output, audio bed).
    await waitFor(async () =>
      readdirSync(os.tmpdir()).some((f) => f.includes(id)) ? undefined : true,
    );
  });

  it('a storyboard URL that does not exist fails the task naming the field, without retries', async () => {
    const { final } = await run({
      project_id: 'small_videos',
      task_type: 'generate_video',
      task_data: {
        storyboard_images: [`${base}/frame1.jpg`, `${base}/missing.jpg`],
        scene_description: 'x',
        resolution: '320x180',
        duration: 1,
      },
    });
    expect(final.status).toBe('failed');
    expect(final.error).toMatch(/task_data\.storyboard_images\[1\].*404/);
    expect(files.hits.get('/missing.jpg')).toBe(1);
  });

  it.each([
    [{ resolution: '1921x1080' }, /task_data\.resolution must have even width and height/],
    [{ resolution: '7680x4320' }, /task_data\.resolution must have sides between 64 and 3840/],
    [{ resolution: 'hd' }, /task_data\.resolution must be WIDTHxHEIGHT/],
    [{ duration: 31 }, /task_data\.duration must not be greater than 30/],
    [{ duration: 0.5 }, /task_data\.duration must not be less than 1/],
    [{ fps: 61 }, /task_data\.fps must not be greater than 60/],
    [{ fps: 11 }, /task_data\.fps must not be less than 12/],
    [{ storyboard_images: [] }, /task_data\.storyboard_images must contain at least 1 elements/],
    [{ storyboard_images: ['ftp://x/y.jpg'] }, /task_data\.storyboard_images/],
    [{ scene_description: '' }, /task_data\.scene_description/],
  ])('refuses %j with a 400 naming the field', async (patch, message) => {
    const res = await service.http.post('/tasks/submit', {
      project_id: 'small_videos',
      task_type: 'generate_video',
      task_data: {
        storyboard_images: [`${base}/frame1.jpg`],
        scene_description: 'x',
        ...patch,
      },
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body.message)).toMatch(message);
  });
});
