import * as tf from '@tensorflow/tfjs-core';
import { VIDEO_LIGHTING_PRESETS } from '@app/tasks';
import { selectTfjsBackend } from '@app/gpu/tfjs-backend.selection';
import { lightGains } from './camera.view';
import { sceneGradeFor, screenGains, screenLight } from './scene.lighting';

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
