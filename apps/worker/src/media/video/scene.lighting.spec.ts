import * as tf from '@tensorflow/tfjs-core';
import { VIDEO_LIGHTING_PRESETS } from '@app/tasks';
import { selectTfjsBackend } from '@app/gpu/tfjs-backend.selection';
import { gradeBytes, lightGains, sceneGradeFor, screenGains } from './scene.lighting';
import { gradeColours, screenLight, toRgb24 } from './scene.reference';

describe('screen gains', () => {
  beforeAll(async () => {
    await selectTfjsBackend('cpu');
  });

  it.each([...VIDEO_LIGHTING_PRESETS])(
    '%s: the fixed-point screen light, as from the tfjs one',
    (preset) => {
      const grade = sceneGradeFor(preset);
      const [width, height] = [97, 41];
      const direct = screenGains(grade, width, height);
      const light = tf.tidy(() => screenLight(tf, grade, width, height));
      const viaTf = lightGains(light.dataSync());
      light.dispose();
      expect(direct.length).toBe(width * height * 3);
      let worst = 0;
      for (let i = 0; i < direct.length; i++) {
        worst = Math.max(worst, Math.abs(direct[i] - viaTf[i]));
      }
      // float64 here, float32 in tfjs: at most one fixed-point step apart.
      expect(worst).toBeLessThanOrEqual(1);
    },
  );
});

describe('gradeBytes', () => {
  beforeAll(async () => {
    await selectTfjsBackend('cpu');
  });

  it.each([...VIDEO_LIGHTING_PRESETS])('%s: the colour grade, as from the tfjs one', (preset) => {
    const grade = sceneGradeFor(preset);
    const [width, height] = [61, 37];
    // Every byte value in every channel, plus noise.
    const src = Uint8Array.from({ length: width * height * 3 }, (_, i) =>
      i < 768 ? i % 256 : (i * 2654435761) >>> 24,
    );
    const direct = gradeBytes(grade, src);
    const graded = tf.tidy(() =>
      tf.mul(
        gradeColours(
          tf,
          grade,
          tf.tensor4d(Float32Array.from(src), [1, height, width, 3]),
          1 / 255,
        ),
        255,
      ),
    );
    const viaTf = toRgb24(tf, graded);
    graded.dispose();
    let worst = 0;
    let off = 0;
    for (let i = 0; i < src.length; i++) {
      const d = Math.abs(direct[i] - viaTf[i]);
      worst = Math.max(worst, d);
      if (d > 0) off++;
    }
    // float64 here, float32 in tfjs: at most one step apart, and rarely.
    expect(worst).toBeLessThanOrEqual(1);
    expect(off / src.length).toBeLessThan(0.01);
  });

  it('grades into a given buffer and refuses what is not rgb24', () => {
    const grade = sceneGradeFor('natural');
    const src = Uint8Array.from([0, 0, 0, 255, 255, 255]);
    const dst = new Uint8Array(9).fill(7);
    expect(gradeBytes(grade, src, dst)).toBe(dst);
    expect(dst[6]).toBe(7);
    expect(() => gradeBytes(grade, new Uint8Array(4))).toThrow(RangeError);
    expect(() => gradeBytes(grade, src, new Uint8Array(3))).toThrow(RangeError);
  });
});
