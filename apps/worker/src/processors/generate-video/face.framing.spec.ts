import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Logger } from '@nestjs/common';
import sharp from 'sharp';
import { GENERATE_VIDEO_TASK, validateTaskData, type GenerateVideoTaskData } from '@app/tasks';
import { TestFileServer } from '@app/testing';
import { FaceAnalyzer } from '../../media/faces/face.analyzer';
import { cameraBox } from '../../media/video/camera.path';
import { extractFrame } from '../../media/video/media.probe';
import type { RunningTask } from '../../runtime/task-processor';
import {
  outputFile as file,
  startProcessor,
  type StartedProcessor,
} from '../../../test/support/processor.harness';
import { coverFocus } from './face.framing';
import { GenerateVideoModule } from './generate-video.module';
import { GenerateVideoProcessor } from './generate-video.processor';

const FACE = readFileSync(path.join(__dirname, '../../../test/fixtures/faces/face.jpg'));

describe('coverFocus', () => {
  const box = (x: number, y: number, width: number, height: number) => ({
    box: { x, y, width, height },
  });

  it('is the centre of one face, in 0..1 of a source of the same aspect', () => {
    expect(
      coverFocus(
        [box(300, 100, 100, 100)],
        { width: 800, height: 400 },
        { width: 1600, height: 800 },
      ),
    ).toEqual({
      x: 0.4375,
      y: 0.375,
    });
  });

  it('weights faces by area and maps through the cover crop', () => {
    // A square image into a 2:1 source: the middle half of its height stays in view.
    const focus = coverFocus(
      [box(100, 400, 200, 200), box(700, 450, 100, 100)],
      { width: 1000, height: 1000 },
      { width: 200, height: 100 },
    );
    // Centres (200, 500) weight 4 and (750, 500) weight 1 → x 310; y 500 is the middle of 250..750.
    expect(focus!.x).toBeCloseTo(0.31, 6);
    expect(focus!.y).toBeCloseTo(0.5, 6);
  });

  it('ignores faces the crop cuts away; none left is null', () => {
    const image = { width: 1000, height: 1000 };
    const source = { width: 200, height: 100 };
    expect(coverFocus([box(400, 50, 100, 100)], image, source)).toBeNull();
    expect(coverFocus([], image, source)).toBeNull();
  });
});

describe('cameraBox centred on a subject', () => {
  const centreX = ([, x1, , x2]: number[]) => (x1 + x2) / 2;
  const centreY = ([y1, , y2]: number[]) => (y1 + y2) / 2;

  it('pans across the subject instead of the whole frame', () => {
    const s = { x: 0.6, y: 0.45 };
    const at = (u: number) => cameraBox('pan_left', u, 7, s, true);
    // Mid-move the view is centred on the subject; it turns right to left across it.
    expect(centreX(at(0.5))).toBeCloseTo(0.6, 6);
    expect(centreY(at(0.5))).toBeCloseTo(0.45, 6);
    expect(centreX(at(0))).toBeGreaterThan(centreX(at(0.5)));
    expect(centreX(at(1))).toBeLessThan(centreX(at(0.5)));
    // Not centred: the frame's middle, whatever the subject.
    expect(centreX(cameraBox('pan_left', 0.5, 7, s))).toBeCloseTo(0.5, 6);
    expect(centreY(cameraBox('pan_left', 0.5, 7, s))).toBeCloseTo(0.5, 6);
    expect(centreX(cameraBox('tilt_up', 0.5, 7, s, true))).toBeCloseTo(0.6, 6);
  });

  it('leaves moves that follow the subject anyway as they were', () => {
    const s = { x: 0.3, y: 0.4 };
    for (const preset of ['close_up', 'medium_shot', 'dolly_in', 'tracking_shot'] as const) {
      expect(cameraBox(preset, 0.3, 7, s, true)).toEqual(cameraBox(preset, 0.3, 7, s));
    }
  });
});

describe('GenerateVideoProcessor with framing: faces (human-face-body on real weights)', () => {
  const files = new TestFileServer();
  let base = '';
  let started: StartedProcessor<GenerateVideoProcessor>;
  const outputs: string[] = [];
  const size = { width: 320, height: 180 };

  beforeAll(async () => {
    Logger.overrideLogger(false);
    // A face near the right edge of a 16:9 frame: outside the view of a centred close-up.
    files.set('/face-right.jpg', {
      body: await sharp({ create: { width: 640, height: 360, channels: 3, background: '#405a78' } })
        .composite([{ input: await sharp(FACE).resize(160, 160).toBuffer(), left: 460, top: 60 }])
        .jpeg({ quality: 90 })
        .toBuffer(),
      contentType: 'image/jpeg',
    });
    files.set('/empty.jpg', {
      body: await sharp({ create: { width: 640, height: 360, channels: 3, background: '#6a5040' } })
        .jpeg()
        .toBuffer(),
      contentType: 'image/jpeg',
    });
    base = await files.start();
    started = await startProcessor(GenerateVideoModule, GenerateVideoProcessor);
  });

  afterAll(async () => {
    await started?.close();
    await files.stop();
    await Promise.all(outputs.map((f) => rm(f, { force: true })));
    Logger.overrideLogger(new Logger());
  });

  const run = async (input: Record<string, unknown>) => {
    const task: RunningTask<GenerateVideoTaskData> = {
      taskId: `framing-spec-${process.pid}-${outputs.length}`,
      projectId: 'project-1',
      taskType: 'generate_video',
      attempt: 1,
      data: validateTaskData(GENERATE_VIDEO_TASK, {
        scene_description: 'Detective turns to the camera',
        resolution: `${size.width}x${size.height}`,
        duration: 2,
        fps: 12,
        camera_angle: 'close_up',
        storyboard_images: [`${base}/face-right.jpg`, `${base}/empty.jpg`],
        ...input,
      }),
      signal: new AbortController().signal,
      progress: async () => undefined,
    };
    const output = await started.processor.process(task);
    outputs.push(file(output));
    return output;
  };

  /** Faces the detector finds in frame `index` of the video. */
  const facesIn = async (video: string, index: number) => {
    const rgb = await extractFrame(video, index, size);
    return started.get(FaceAnalyzer).use(async (analyze) => {
      const found = await analyze({
        data: rgb,
        ...size,
        originalWidth: size.width,
        originalHeight: size.height,
      });
      return found.faces;
    });
  };

  it('centres the close-up on the face of each frame; a frame without one falls back, and says so', async () => {
    const faces = await run({ framing: 'faces' });
    expect(faces.metadata).toMatchObject({
      framing: 'faces',
      faces_per_frame: [1, 0],
      framing_per_frame: ['faces', 'positions'],
      framing_fallback_frames: [1],
      face_focus_per_frame: [{ x: expect.any(Number), y: expect.any(Number) }, null],
      face_model: expect.stringMatching(/^human-face-body@/),
    });
    const [focus] = faces.metadata.face_focus_per_frame as Array<{ x: number; y: number }>;
    // The face spans x 460..620 and y 60..220 of 640×360.
    expect(focus.x).toBeCloseTo(540 / 640, 1);
    expect(focus.y).toBeCloseTo(140 / 360, 1);

    const positions = await run({});
    expect(positions.metadata.framing).toBe('positions');
    expect(positions.metadata.faces_per_frame).toBeUndefined();

    // What the viewer sees in the first frame: the face when framed on faces, none otherwise.
    const seen = await facesIn(file(faces), 0);
    expect(seen).toHaveLength(1);
    expect(seen[0].box.width).toBeGreaterThan(size.width / 4);
    expect(await facesIn(file(positions), 0)).toHaveLength(0);
  });
});
