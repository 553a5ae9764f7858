import { readFileSync } from 'node:fs';
import path from 'node:path';
import { bundledModelsDir } from './bundled-models';
import { parseModelConfig } from './model-config';

const base = { name: 'm', version: '1', format: 'tfjs-graph', inputs: [], outputs: [] };

describe('parseModelConfig warm-up', () => {
  it('accepts the bundled segmentation configs (tfjs graphs; RVM warms up with named inputs)', () => {
    for (const name of ['person-segmentation-selfie', 'person-segmentation-rvm']) {
      const file = path.join(bundledModelsDir()!, name, '1', 'config.json');
      const config = parseModelConfig(JSON.parse(readFileSync(file, 'utf8')), file);
      expect(config.format).toBe('tfjs-graph');
    }
    const rvm = parseModelConfig(
      JSON.parse(
        readFileSync(
          path.join(bundledModelsDir()!, 'person-segmentation-rvm', '1', 'config.json'),
          'utf8',
        ),
      ),
      'rvm',
    );
    expect(rvm.warmup?.inputs?.downsample_ratio).toEqual({ shape: [], value: 0.5 });
  });

  it.each([
    [{}, /"warmup" must have "shape" or "inputs"/],
    [{ inputs: [] }, /"warmup.inputs" must be an object/],
    [{ inputs: { src: { shape: [1, 0, 2] } } }, /"warmup.inputs.src.shape"/],
    [{ inputs: { ratio: { shape: [], value: 'half' } } }, /"warmup.inputs.ratio.value"/],
    [{ shape: [1, -1] }, /"warmup.shape"/],
  ])('refuses warmup %j', (warmup, message) => {
    expect(() => parseModelConfig({ ...base, warmup }, 'config.json')).toThrow(message);
  });
});
