import * as tf from '@tensorflow/tfjs-core';
import { selectTfjsBackend } from '@app/gpu/tfjs-backend.selection';
import { CAMERA_PRESETS } from '@app/tasks';
import { cameraBox, maxZoom, subjectFocus } from './camera.path';
import { colourMatrix, sceneGradeFor } from './scene.lighting';
import { gradeColours, screenLight, toRgb24 } from './scene.reference';

describe.each(['wasm', 'cpu'] as const)('rgb24 readback on %s', (backend) => {
  beforeAll(async () => {
    await selectTfjsBackend(backend);
  });

  it('turns byte-range floats into rounded, clipped rgb24', () => {
    const frames = tf.tensor4d([-3, 0.4, 0.6, 254.5, 255, 300], [1, 1, 2, 3]);
    expect(Array.from(toRgb24(tf, frames))).toEqual([0, 0, 1, 255, 255, 255]);
    const target = new Uint8Array(12);
    expect(toRgb24(tf, frames, target).buffer).toBe(target.buffer);
  });
});

describe('camera path', () => {
  it('keeps every box inside the source and with the output aspect', () => {
    for (const preset of CAMERA_PRESETS) {
      for (let i = 0; i <= 10; i++) {
        const [y1, x1, y2, x2] = cameraBox(preset, i / 10, 7, { x: 0.2, y: 0.4 });
        expect(Math.min(y1, x1)).toBeGreaterThanOrEqual(0);
        expect(Math.max(y2, x2)).toBeLessThanOrEqual(1);
        expect(y2 - y1).toBeCloseTo(x2 - x1);
      }
    }
  });

  it('moves as each preset says', () => {
    const s = { x: 0.5, y: 0.5 };
    const centreX = (b: number[]) => (b[1] + b[3]) / 2;
    const centreY = (b: number[]) => (b[0] + b[2]) / 2;
    const size = (b: number[]) => b[2] - b[0];
    expect(centreX(cameraBox('pan_left', 0, 7, s))).toBeGreaterThan(
      centreX(cameraBox('pan_left', 1, 7, s)),
    );
    expect(centreX(cameraBox('pan_right', 0, 7, s))).toBeLessThan(
      centreX(cameraBox('pan_right', 1, 7, s)),
    );
    expect(centreY(cameraBox('tilt_up', 0, 7, s))).toBeGreaterThan(
      centreY(cameraBox('tilt_up', 1, 7, s)),
    );
    expect(size(cameraBox('dolly_in', 1, 7, s))).toBeLessThan(
      size(cameraBox('dolly_in', 0, 7, s)) * 0.7,
    );
    expect(size(cameraBox('dolly_out', 1, 7, s))).toBeGreaterThan(
      size(cameraBox('dolly_out', 0, 7, s)) * 1.4,
    );
    expect(size(cameraBox('close_up', 0.5, 7, s))).toBeLessThan(
      size(cameraBox('medium_shot', 0.5, 7, s)),
    );
    expect(size(cameraBox('medium_shot', 0.5, 7, s))).toBeLessThan(
      size(cameraBox('wide_shot', 0.5, 7, s)),
    );
    expect(maxZoom('wide_shot')).toBeCloseTo(1.06);
    expect(maxZoom('close_up')).toBeCloseTo(2.4);
  });

  it('reads the subject position from character positions', () => {
    expect(subjectFocus(['detective_center'])).toEqual({ x: 0.5, y: 0.42 });
    expect(subjectFocus(['villain_left'])).toMatchObject({ x: 0.3 });
    expect(subjectFocus(['a_left', 'b_right'])).toMatchObject({ x: 0.5 });
    expect(subjectFocus(undefined)).toEqual({ x: 0.5, y: 0.42 });
  });
});

describe('scene lighting', () => {
  it('noir removes colour; unknown presets grade natural', () => {
    const noir = sceneGradeFor('noir_dramatic');
    const m = colourMatrix(noir);
    // Every output channel mixes the same luma (rows differ only by the tint).
    expect(m[0] / m[3]).toBeCloseTo(m[1] / m[4]);
    expect(sceneGradeFor('candle light').preset).toBe('natural');
    const red = tf.tensor4d([0.9, 0.1, 0.1], [1, 1, 1, 3]);
    const [r, g, b] = gradeColours(tf, noir, red).dataSync();
    expect(Math.abs(r - g)).toBeLessThan(0.05);
    expect(Math.abs(g - b)).toBeLessThan(0.08);
  });

  it('the screen light averages one before the vignette and darkens the corners', () => {
    const grade = sceneGradeFor('night');
    const light = screenLight(tf, { ...grade, vignette: 0 }, 64, 36);
    expect(tf.mean(light).dataSync()[0]).toBeCloseTo(1, 2);
    const vignetted = screenLight(tf, grade, 64, 36, 255);
    const corner = tf.slice(vignetted, [0, 0, 0, 0], [1, 1, 1, 3]).dataSync();
    const centre = tf.slice(vignetted, [0, 18, 32, 0], [1, 1, 1, 3]).dataSync();
    expect(corner[2]).toBeLessThan(centre[2] * 0.8);
    expect(vignetted.shape).toEqual([1, 36, 64, 3]);
  });
});
