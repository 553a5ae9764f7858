import { Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import {
  GENERATE_IMAGE_TASK,
  PROCESS_AUDIO_TASK,
  validateTaskData,
  type TaskDefinition,
} from '@app/tasks';
import { RetryPolicy } from '../runtime/retry-policy';
import { classifyError, PermanentTaskError } from '../runtime/task-errors';
import type { TaskOutput } from '../runtime/task-processor';
import { ContentBlockedError } from './content-blocked.error';
import { SafetyCheck, type SafetyCheckEvent } from './safety.check';
import {
  UndecodableImageError,
  unsafeScore,
  type SafetyClassifier,
  type SafetyImage,
  type SafetyScores,
} from './safety.classifier';

const NEUTRAL: SafetyScores = { Drawing: 0.05, Hentai: 0.01, Neutral: 0.9, Porn: 0.03, Sexy: 0.01 };
const EXPLICIT: SafetyScores = { Drawing: 0.01, Hentai: 0.04, Neutral: 0.05, Porn: 0.6, Sexy: 0.3 };

const OUTPUT: TaskOutput = {
  media: {
    kind: 'buffer',
    data: Buffer.from('output'),
    extension: 'png',
    contentType: 'image/png',
  },
  metadata: { resolution: '64x64' },
};

/** The run check over a classifier that answers from a table of image bytes → scores. */
function setup(threshold?: string, table: Record<string, SafetyScores> = {}) {
  const calls: SafetyImage[][] = [];
  const classifier = {
    classify: jest.fn((images: readonly SafetyImage[]) => {
      calls.push([...images]);
      const results = images.map((img, i) => {
        const key = String(img);
        if (key === 'broken') throw new UndecodableImageError(i, new Error('bad header'));
        const scores = table[key] ?? NEUTRAL;
        return { scores, unsafe_score: unsafeScore(scores) };
      });
      return Promise.resolve({ model: { model: 'nsfw-mobilenet-v2', version: '4.3.0' }, results });
    }),
  };
  const config = AppConfig.fromEnv({
    API_KEYS: 'k',
    ...(threshold === undefined ? {} : { SAFETY_BLOCK_THRESHOLD: threshold }),
  });
  const check = new SafetyCheck(classifier as unknown as SafetyClassifier, config);
  const events: SafetyCheckEvent[] = [];
  check.onCheck((e) => events.push(e));
  const run = (def: TaskDefinition<any>, data: object) =>
    check.forRun(def, data, { task_id: 't1', project_id: 'p1' }, new AbortController().signal);
  return { calls, events, run, config };
}

const image = (extra: Record<string, unknown> = {}) =>
  validateTaskData(GENERATE_IMAGE_TASK, { character_description: 'x', ...extra });

describe('SafetyCheck', () => {
  beforeAll(() => Logger.overrideLogger(false));
  afterAll(() => Logger.overrideLogger(new Logger()));

  it('does nothing for a task that did not ask for it', async () => {
    const { calls, events, run } = setup('0.000001');
    for (const data of [image(), image({ safety_check: false })]) {
      const safety = run(GENERATE_IMAGE_TASK, data);
      expect(safety.enabled).toBe(false);
      await safety.checkInputs([{ field: 'task_data.style_guide', data: Buffer.from('x') }]);
      expect(await safety.checkOutput(OUTPUT)).toBe(OUTPUT);
    }
    expect(calls).toEqual([]);
    expect(events).toEqual([]);
  });

  it('reports the scores in metadata.safety; without a threshold nothing is blocked', async () => {
    const { events, run } = setup(undefined, { output: EXPLICIT });
    const safety = run(GENERATE_IMAGE_TASK, image({ safety_check: true }));
    await safety.checkInputs([
      { field: 'task_data.style_guide', data: Buffer.from('guide') },
      { field: 'task_data.reference_images[0]', data: Buffer.from('ref') },
    ]);
    const out = await safety.checkOutput(OUTPUT);
    expect(out.media).toBe(OUTPUT.media);
    expect(out.metadata).toEqual({
      resolution: '64x64',
      safety: {
        model: 'nsfw-mobilenet-v2',
        version: '4.3.0',
        threshold: null,
        blocked: false,
        scores: EXPLICIT,
        unsafe_score: 0.94,
        inputs: [
          { field: 'task_data.style_guide', scores: NEUTRAL, unsafe_score: 0.05 },
          { field: 'task_data.reference_images[0]', scores: NEUTRAL, unsafe_score: 0.05 },
        ],
      },
    });
    expect(events.map((e) => `${e.target}:${e.blocked}`)).toEqual([
      'input:false',
      'input:false',
      'output:false',
    ]);
  });

  it('blocks an output above the threshold, naming the score and the threshold; never retried', async () => {
    const { events, run, config } = setup('0.5', { output: EXPLICIT });
    const safety = run(GENERATE_IMAGE_TASK, image({ safety_check: true }));
    const err = await safety.checkOutput(OUTPUT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContentBlockedError);
    expect((err as Error).message).toBe(
      'content blocked: output image has unsafe_score 0.94 (Porn 0.6 + Hentai 0.04 + Sexy 0.3), ' +
        'above SAFETY_BLOCK_THRESHOLD 0.5; the output was not stored',
    );
    expect(classifyError(err)).toBe('content_blocked');
    expect(new RetryPolicy(config).decide('content_blocked', 1, {})).toEqual({
      retry: false,
      reason: 'content_blocked errors are not retried',
    });
    expect(events).toEqual([{ target: 'output', taskType: 'generate_image', blocked: true }]);
    // At or under the threshold passes: "above" is strict.
    const edge = setup('0.94', { output: EXPLICIT });
    const passed = await edge
      .run(GENERATE_IMAGE_TASK, image({ safety_check: true }))
      .checkOutput(OUTPUT);
    expect(passed.metadata.safety).toMatchObject({
      threshold: 0.94,
      unsafe_score: 0.94,
      blocked: false,
    });
  });

  it('blocks an unsafe input before the task is processed, naming its field', async () => {
    const { events, run } = setup('0.5', { ref: EXPLICIT });
    const safety = run(GENERATE_IMAGE_TASK, image({ safety_check: true }));
    const err = await safety
      .checkInputs([
        { field: 'task_data.style_guide', data: Buffer.from('guide') },
        { field: 'task_data.reference_images[0]', data: Buffer.from('ref') },
        { field: 'task_data.reference_images[1]', data: Buffer.from('other') },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ContentBlockedError);
    expect((err as ContentBlockedError).subject).toBe('task_data.reference_images[0]');
    expect((err as Error).message).toMatch(
      /^content blocked: input image task_data\.reference_images\[0\] has unsafe_score 0\.94 .*above SAFETY_BLOCK_THRESHOLD 0\.5; the task was not processed$/,
    );
    expect(events.map((e) => e.blocked)).toEqual([false, true, false]);
  });

  it('classifies only the inputs of a type that does not make images', async () => {
    const { calls, run } = setup();
    // process_audio declares no safety_check; a type that did would still have no image output.
    const safety = run(PROCESS_AUDIO_TASK, { safety_check: true });
    await safety.checkInputs([{ field: 'task_data.voice_profile', data: Buffer.from('face') }]);
    const out = await safety.checkOutput(OUTPUT);
    expect(calls).toHaveLength(1);
    expect(out.metadata.safety).toEqual({
      model: 'nsfw-mobilenet-v2',
      version: '4.3.0',
      threshold: null,
      blocked: false,
      inputs: [{ field: 'task_data.voice_profile', scores: NEUTRAL, unsafe_score: 0.05 }],
    });
  });

  it('fails an input that does not decode for good, naming its field', async () => {
    const { run } = setup();
    const safety = run(GENERATE_IMAGE_TASK, image({ safety_check: true }));
    const err = await safety
      .checkInputs([
        { field: 'task_data.style_guide', data: Buffer.from('guide') },
        { field: 'task_data.reference_images[0]', data: Buffer.from('broken') },
      ])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentTaskError);
    expect((err as Error).message).toBe(
      'task_data.reference_images[0]: not a decodable image (bad header)',
    );
    expect(classifyError(err)).toBe('validation');
  });
});
