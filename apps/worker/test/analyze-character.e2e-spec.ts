import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { runTaskToEnd, TestFileServer } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';
import { FaceAnalyzer } from '../src/media/faces/face.analyzer';
import { extractFrame, probeMedia } from '../src/media/video/media.probe';

const fixture = (name: string) => readFileSync(path.join(__dirname, 'fixtures/faces', name));

/** analyze_character and generate_video's face framing end to end: real API, worker, weights. */
describe('analyze_character end to end', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'gpu_medium,gpu_heavy' } });
  const files = new TestFileServer();
  const downloads: string[] = [];
  let base = '';

  beforeAll(async () => {
    files.set('/detective_sheet.jpg', { body: fixture('face.jpg'), contentType: 'image/jpeg' });
    files.set('/shot1.jpg', { body: fixture('face.jpg'), contentType: 'image/jpeg' });
    files.set('/shot2.jpg', { body: fixture('body.jpg'), contentType: 'image/jpeg' });
    files.set('/stranger.jpg', { body: fixture('other-face.jpg'), contentType: 'image/jpeg' });
    files.set('/empty_alley.png', {
      body: await sharp({ create: { width: 480, height: 270, channels: 3, background: '#2a3040' } })
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    // A storyboard frame with the character's face off to the right.
    files.set('/frame_face.jpg', {
      body: await sharp({ create: { width: 640, height: 360, channels: 3, background: '#405a78' } })
        .composite([
          {
            input: await sharp(fixture('face.jpg')).resize(160, 160).toBuffer(),
            left: 440,
            top: 70,
          },
        ])
        .jpeg({ quality: 90 })
        .toBuffer(),
      contentType: 'image/jpeg',
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

  it('reports faces, pose and consistency against the reference as a JSON document', async () => {
    const { id, submitted, final, seen } = await run({
      project_id: 'detective_series_001',
      task_type: 'analyze_character',
      task_data: {
        image_urls: [
          `${base}/shot1.jpg`,
          `${base}/shot2.jpg`,
          `${base}/stranger.jpg`,
          `${base}/empty_alley.png`,
        ],
        reference_images: [`${base}/detective_sheet.jpg`],
      },
      metadata: { agent_id: 'continuity_agent' },
    });
    expect(submitted).toMatchObject({ status: 'queued', estimated_duration: expect.any(Number) });
    expect(final).toMatchObject({ status: 'completed', progress: 1, error: null });
    expect(seen.map((s) => s.step)).toEqual(expect.arrayContaining(['analyzing_faces']));
    expect(final.result.media_url).toContain(
      `/projects/detective_series_001/analysis/${id}/output.json`,
    );
    expect(final.result.metadata).toMatchObject({
      format: 'JSON',
      images: 4,
      references: 1,
      faces_per_image: [1, 1, 1, 0],
      consistency_reference: 'reference_images',
      matches_per_image: [true, false, false, false],
      match_threshold: 0.7,
      backend: 'wasm',
      model: 'human-face-body',
      model_version: expect.any(String),
      file_size: expect.any(Number),
    });

    const media = await fetch(final.result.media_url);
    expect(media.status).toBe(200);
    expect(media.headers.get('content-type')).toBe('application/json');
    const bytes = Buffer.from(await media.arrayBuffer());
    expect(bytes.length).toBe(final.result.metadata.file_size);
    const doc = JSON.parse(bytes.toString('utf8'));
    expect(doc).toMatchObject({
      schema: 'analyze_character/v1',
      model: { name: 'human-face-body' },
      backend: 'wasm',
      consistency: { reference: 'reference_images', match_threshold: 0.7 },
    });
    const [shot1, shot2, stranger, empty] = doc.images;
    expect(shot1).toMatchObject({ field: 'task_data.image_urls[0]', width: 256, height: 256 });
    expect(shot1.faces[0]).toMatchObject({
      best: true,
      gender: 'female',
      box: { x: expect.any(Number), width: expect.any(Number) },
      landmarks: { right_eye: { x: expect.any(Number) }, chin: { y: expect.any(Number) } },
      emotion: { top: expect.any(String) },
      embedding: { dims: 1024, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) },
    });
    expect(shot1.faces[0].embedding.values).toBeUndefined();
    // The same picture as the reference: the same embedding.
    expect(shot1.faces[0].embedding.sha256).toBe(doc.references[0].faces[0].embedding.sha256);
    expect(shot1.consistency.max).toBeGreaterThanOrEqual(0.99);
    // The full-body shot of the same character: similar, below the default threshold.
    expect(shot2.consistency.max).toBeGreaterThan(stranger.consistency.max);
    expect(shot2.bodies[0].keypoints.length).toBeGreaterThan(10);
    expect(stranger.consistency.max).toBeLessThan(0.5);
    expect(empty).toMatchObject({
      faces: [],
      consistency: { max: null, matches: false, note: 'no face found in this image' },
    });
    expect(final.result.metadata.consistency_per_image).toEqual(
      doc.images.map((i: { consistency: { max: number | null } }) => i.consistency.max),
    );
  });

  it('refuses bad input with a 400 naming the field', async () => {
    const submit = (task_data: unknown) =>
      service.http.post('/tasks/submit', {
        project_id: 'detective_series_001',
        task_type: 'analyze_character',
        task_data,
      });
    const url = `${base}/shot1.jpg`;
    const cases: Array<[unknown, RegExp]> = [
      [{ image_urls: [] }, /task_data\.image_urls must contain at least 1 elements/],
      [{ image_urls: Array(17).fill(url) }, /task_data\.image_urls must contain no more than 16/],
      [{ image_urls: ['not a url'] }, /task_data\.image_urls must be an http\(s\) URL/],
      [{}, /task_data\.image_urls/],
      [
        { image_urls: [url], reference_images: Array(9).fill(url) },
        /task_data\.reference_images must contain no more than 8/,
      ],
      [
        { image_urls: [url], match_threshold: 2 },
        /task_data\.match_threshold must not be greater than 1/,
      ],
      [
        { image_urls: [url], include_embeddings: 'yes' },
        /task_data\.include_embeddings must be a boolean/,
      ],
    ];
    for (const [data, message] of cases) {
      const res = await submit(data);
      expect({ data, status: res.status }).toEqual({ data, status: 400 });
      expect([res.body.message].flat().join('\n')).toMatch(message);
    }
  });

  it('generate_video with framing faces centres on the face and reports faces per frame', async () => {
    const { id, final } = await run({
      project_id: 'detective_series_001',
      task_type: 'generate_video',
      task_data: {
        storyboard_images: [`${base}/frame_face.jpg`, `${base}/empty_alley.png`],
        scene_description: 'Detective looks up, then the empty alley',
        camera_angle: 'close_up',
        framing: 'faces',
        resolution: '640x360',
        duration: 2,
        fps: 12,
      },
    });
    expect(final).toMatchObject({ status: 'completed', progress: 1 });
    expect(final.result.metadata).toMatchObject({
      framing: 'faces',
      faces_per_frame: [1, 0],
      framing_per_frame: ['faces', 'positions'],
      framing_fallback_frames: [1],
      face_model: expect.stringMatching(/^human-face-body@/),
      resolution: '640x360',
      frames: 24,
    });
    const [focus] = final.result.metadata.face_focus_per_frame;
    // The face's centre: (520, 150) of 640×360.
    expect(focus.x).toBeCloseTo(520 / 640, 1);
    expect(focus.y).toBeCloseTo(150 / 360, 1);

    const media = await fetch(final.result.media_url);
    expect(media.status).toBe(200);
    expect(media.headers.get('content-type')).toBe('video/mp4');
    const file = path.join(os.tmpdir(), `framing-e2e-${randomBytes(4).toString('hex')}.mp4`);
    await writeFile(file, Buffer.from(await media.arrayBuffer()));
    downloads.push(file);
    const probed = await probeMedia(file);
    expect(probed.video).toMatchObject({ codec: 'h264', width: 640, height: 360, frames: 24 });
    expect(final.result.media_url).toContain(`/video/${id}/output.mp4`);

    // What the viewer sees: the face, large, in the first frame (the detector finds it there).
    const size = { width: 640, height: 360 };
    const first = await extractFrame(file, 0, size);
    const faces = await service
      .worker!.get(FaceAnalyzer, { strict: false })
      .use(async (analyze) =>
        analyze({ data: first, ...size, originalWidth: size.width, originalHeight: size.height }),
      );
    expect(faces.faces).toHaveLength(1);
    expect(faces.faces[0].box.width).toBeGreaterThan(size.width / 4);
  });
});
