import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import {
  ANALYZE_CHARACTER_TASK,
  validateTaskData,
  type AnalyzeCharacterTaskData,
} from '@app/tasks';
import { TestFileServer } from '@app/testing';
import { InputFetchError } from '../../inputs/input-fetch.error';
import type { RunningTask, TaskOutput } from '../../runtime/task-processor';
import { startProcessor, type StartedProcessor } from '../../../test/support/processor.harness';
import { AnalyzeCharacterModule } from './analyze-character.module';
import { AnalyzeCharacterProcessor, type CharacterAnalysis } from './analyze-character.processor';

const FIXTURES = path.join(__dirname, '../../../test/fixtures/faces');
const fixture = (name: string) => readFileSync(path.join(FIXTURES, name));

let counter = 0;

function runningTask(
  input: Record<string, unknown>,
  signal = new AbortController().signal,
): { task: RunningTask<AnalyzeCharacterTaskData>; progress: [number, string][] } {
  const progress: [number, string][] = [];
  counter += 1;
  const task: RunningTask<AnalyzeCharacterTaskData> = {
    taskId: `character-spec-${process.pid}-${counter}`,
    projectId: 'project-1',
    taskType: 'analyze_character',
    attempt: 1,
    data: validateTaskData(ANALYZE_CHARACTER_TASK, input),
    signal,
    progress: async (fraction, step) => {
      signal.throwIfAborted();
      progress.push([fraction, step]);
    },
  };
  return { task, progress };
}

function documentOf(output: TaskOutput): CharacterAnalysis {
  if (output.media.kind !== 'buffer') throw new Error('expected a buffer');
  expect(output.media).toMatchObject({ extension: 'json', contentType: 'application/json' });
  return JSON.parse(output.media.data.toString('utf8')) as CharacterAnalysis;
}

describe('AnalyzeCharacterProcessor (human-face-body on real weights)', () => {
  const files = new TestFileServer();
  let base = '';
  let started: StartedProcessor<AnalyzeCharacterProcessor>;
  // Where the face sits in /framed.jpg: a 180² copy of face.jpg at (400, 80) on 640×480.
  const FRAMED = { x: 400, y: 80, side: 180, width: 640, height: 480 };

  beforeAll(async () => {
    Logger.overrideLogger(false);
    const face = fixture('face.jpg');
    files.set('/face.jpg', { body: face, contentType: 'image/jpeg' });
    // The same bytes under another URL: analyzed a second time, not deduplicated.
    files.set('/face-again.jpg', { body: face, contentType: 'image/jpeg' });
    files.set('/face-flipped.png', {
      body: await sharp(face).flop().png().toBuffer(),
      contentType: 'image/png',
    });
    files.set('/framed.jpg', {
      body: await sharp({
        create: { width: FRAMED.width, height: FRAMED.height, channels: 3, background: '#405a78' },
      })
        .composite([
          {
            input: await sharp(face).resize(FRAMED.side, FRAMED.side).toBuffer(),
            left: FRAMED.x,
            top: FRAMED.y,
          },
        ])
        .jpeg({ quality: 90 })
        .toBuffer(),
      contentType: 'image/jpeg',
    });
    files.set('/body.jpg', { body: fixture('body.jpg'), contentType: 'image/jpeg' });
    files.set('/other.jpg', { body: fixture('other-face.jpg'), contentType: 'image/jpeg' });
    files.set('/empty.png', {
      body: await sharp({
        create: { width: 320, height: 240, channels: 3, background: '#7a8a50' },
      })
        .png()
        .toBuffer(),
      contentType: 'image/png',
    });
    files.set('/broken.jpg', { body: Buffer.from('not a jpeg'), contentType: 'image/jpeg' });
    base = await files.start();
    started = await startProcessor(AnalyzeCharacterModule, AnalyzeCharacterProcessor);
  });

  afterAll(async () => {
    await started?.close();
    await files.stop();
    Logger.overrideLogger(new Logger());
  });

  const run = async (data: Record<string, unknown>) => {
    const { task, progress } = runningTask(data);
    const output = await started.processor.process(task);
    return { output, doc: documentOf(output), progress };
  };

  it('finds exactly one face in the face photo: box, landmarks, age, gender, emotion, digest', async () => {
    const { output, doc, progress } = await run({ image_urls: [`${base}/face.jpg`] });
    expect(doc.images).toHaveLength(1);
    const image = doc.images[0];
    expect(image).toMatchObject({ field: 'task_data.image_urls[0]', width: 256, height: 256 });
    expect(image.faces).toHaveLength(1);
    const face = image.faces[0];
    expect(face.best).toBe(true);
    expect(face.score).toBeGreaterThan(0.8);
    // The face fills the portrait: a box inside the image covering most of it.
    expect(face.box.x).toBeGreaterThanOrEqual(0);
    expect(face.box.y).toBeGreaterThanOrEqual(0);
    expect(face.box.x + face.box.width).toBeLessThanOrEqual(256);
    expect(face.box.y + face.box.height).toBeLessThanOrEqual(256);
    expect(face.box.width).toBeGreaterThan(128);
    expect(face.box_normalized.width).toBeCloseTo(face.box.width / 256, 3);

    // Landmarks in anatomical order: eyes above the nose tip above the mouth above the chin;
    // the subject's right eye on the image's left.
    const l = face.landmarks!;
    expect(l.right_eye.x).toBeLessThan(l.left_eye.x);
    expect(l.mouth_right.x).toBeLessThan(l.mouth_left.x);
    expect(Math.max(l.right_eye.y, l.left_eye.y)).toBeLessThan(l.nose_tip.y);
    expect(l.nose_tip.y).toBeLessThan(Math.min(l.mouth_left.y, l.mouth_right.y));
    expect(Math.max(l.mouth_left.y, l.mouth_right.y)).toBeLessThan(l.chin.y);
    expect(l.nose_tip.x).toBeGreaterThan(l.right_eye.x);
    expect(l.nose_tip.x).toBeLessThan(l.left_eye.x);

    expect(face.age).toBeGreaterThan(10);
    expect(face.age).toBeLessThan(60);
    expect(face.gender).toBe('female');
    expect(face.gender_score).toBeGreaterThan(0.5);
    expect(typeof face.emotion.top).toBe('string');
    expect(face.emotion.scores[face.emotion.top!]).toBeGreaterThan(0);
    expect(Math.abs(face.rotation!.yaw)).toBeLessThan(20);
    expect(face.embedding).toEqual({ dims: 1024, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });

    // A single image without references has nothing to be compared with.
    expect(doc.consistency.reference).toBe('image_urls[0]');
    expect(image.consistency).toBeNull();
    expect(output.metadata).toMatchObject({
      format: 'JSON',
      images: 1,
      references: 0,
      faces_per_image: [1],
      consistency_per_image: [null],
      backend: started.gpu.backendName,
      model: 'human-face-body',
      model_version: expect.stringMatching(/^\d+\.\d+\.\d+$/),
    });
    const fractions = progress.map(([f]) => f);
    expect(fractions).toEqual([...fractions].sort((a, b) => a - b));
    expect(progress.map(([, s]) => s)).toEqual(
      expect.arrayContaining(['fetching_images', 'analyzing_faces']),
    );
  });

  it('compares faces with the references: same ≥ 0.99, flipped and re-framed high, others low', async () => {
    const { output, doc } = await run({
      reference_images: [`${base}/face.jpg`],
      image_urls: [
        `${base}/face-again.jpg`,
        `${base}/face-flipped.png`,
        `${base}/framed.jpg`,
        `${base}/other.jpg`,
        `${base}/empty.png`,
      ],
    });
    expect(doc.consistency).toMatchObject({ reference: 'reference_images', match_threshold: 0.7 });
    expect(doc.references).toHaveLength(1);
    expect(doc.references[0].faces).toHaveLength(1);
    const [again, flipped, framed, other, empty] = doc.images;

    // Same bytes analyzed again: the same embedding (digest) and similarity 1.
    expect(again.faces[0].embedding!.sha256).toBe(doc.references[0].faces[0].embedding!.sha256);
    expect(again.consistency!.max).toBeGreaterThanOrEqual(0.99);
    expect(again.consistency!.matches).toBe(true);
    expect(flipped.consistency!.max).toBeGreaterThan(0.8);
    expect(flipped.consistency!.matches).toBe(true);
    expect(framed.consistency!.max).toBeGreaterThan(0.8);
    expect(framed.consistency!.matches).toBe(true);
    expect(other.faces).toHaveLength(1);
    expect(other.consistency!.max).toBeLessThan(0.5);
    expect(other.consistency!.matches).toBe(false);
    expect(empty.faces).toEqual([]);
    expect(empty.consistency).toEqual({
      similarities: [null],
      max: null,
      mean: null,
      matches: false,
      note: 'no face found in this image',
    });
    expect(again.consistency!.similarities).toEqual([again.consistency!.max]);
    expect(again.consistency!.mean).toBe(again.consistency!.max);

    // The re-framed face is found where it was put (within a tenth of the face).
    const box = framed.faces[0].box;
    const tolerance = FRAMED.side / 10;
    expect(Math.abs(box.x + box.width / 2 - (FRAMED.x + FRAMED.side / 2))).toBeLessThan(tolerance);
    expect(Math.abs(box.y + box.height / 2 - (FRAMED.y + FRAMED.side / 2))).toBeLessThan(tolerance);

    expect(output.metadata).toMatchObject({
      images: 5,
      references: 1,
      faces_per_image: [1, 1, 1, 1, 0],
      matches_per_image: [true, true, true, false, false],
    });
    const perImage = output.metadata.consistency_per_image as Array<number | null>;
    expect(perImage[4]).toBeNull();
    expect(perImage.slice(0, 4)).toEqual(doc.images.slice(0, 4).map((i) => i.consistency!.max));
  });

  it('without references compares with the first image; full body gives a pose; embeddings on request', async () => {
    const { doc } = await run({
      image_urls: [`${base}/face.jpg`, `${base}/body.jpg`, `${base}/face-again.jpg`],
      include_embeddings: true,
      match_threshold: 0.5,
    });
    expect(doc.consistency).toMatchObject({ reference: 'image_urls[0]', match_threshold: 0.5 });
    const [first, body, again] = doc.images;
    expect(first.consistency).toBeNull();
    expect(again.consistency!.max).toBeGreaterThanOrEqual(0.99);
    // Same character, its face ten times smaller: similar, below the default 0.7.
    expect(body.consistency!.max).toBeGreaterThan(0.5);
    expect(body.consistency!.matches).toBe(true);
    expect(first.faces[0].embedding!.values).toHaveLength(1024);

    // The standing figure: one body, shoulders above hips above knees above ankles.
    expect(body.bodies).toHaveLength(1);
    const pose = body.bodies[0];
    expect(pose.score).toBeGreaterThan(0.5);
    const y = (part: string) => {
      const k = pose.keypoints.find((p) => p.part === part);
      expect(k).toBeDefined();
      return k!.y;
    };
    expect(y('leftShoulder')).toBeLessThan(y('leftHip'));
    expect(y('leftHip')).toBeLessThan(y('leftKnee'));
    expect(y('leftKnee')).toBeLessThan(y('leftAnkle'));
    expect(pose.box.height).toBeGreaterThan(body.height / 2);
  });

  it('leaves the tensor count where it was', async () => {
    await run({ image_urls: [`${base}/face.jpg`] });
    const before = started.gpu.tf.memory().numTensors;
    await run({ image_urls: [`${base}/framed.jpg`, `${base}/empty.png`] });
    expect(started.gpu.tf.memory().numTensors).toBe(before);
  });

  it('fails on an undecodable image naming its field, without retry', async () => {
    const { task } = runningTask({ image_urls: [`${base}/face.jpg`, `${base}/broken.jpg`] });
    const err = await started.processor.process(task).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputFetchError);
    expect((err as InputFetchError).message).toContain('task_data.image_urls[1]');
    expect((err as InputFetchError).retryable).toBe(false);
  });

  it('stops when the task is cancelled', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled by test');
    controller.abort(reason);
    const { task } = runningTask({ image_urls: [`${base}/face.jpg`] }, controller.signal);
    await expect(started.processor.process(task)).rejects.toBe(reason);
  });
});
