import type { Type } from '@nestjs/common';
import { DECORATORS } from '@nestjs/swagger';
import {
  ANALYZE_CHARACTER_DEFAULTS,
  ANALYZE_CHARACTER_TASK,
} from './analyze-character/analyze-character.task';
import { GENERATE_IMAGE_DEFAULTS, GENERATE_IMAGE_TASK } from './generate-image/generate-image.task';
import { GENERATE_VIDEO_DEFAULTS, GENERATE_VIDEO_TASK } from './generate-video/generate-video.task';
import { VIDEO_OUTPUT } from './generate-video/video-output.options';
import { PROCESS_AUDIO_DEFAULTS, PROCESS_AUDIO_TASK } from './process-audio/process-audio.task';
import {
  REMOVE_BACKGROUND_DEFAULTS,
  REMOVE_BACKGROUND_TASK,
} from './remove-background/remove-background.task';
import {
  AnimationKeyframe,
  AnimationLayer,
  RENDER_ANIMATION_DEFAULTS,
  RENDER_ANIMATION_TASK,
} from './render-animation/render-animation.task';
import { validateTaskData } from './task-data.validator';
import type { TaskDefinition } from './task-definition';
import { TASK_DEFINITIONS } from './task-definitions';
import { UPSCALE_IMAGE_DEFAULTS, UPSCALE_IMAGE_TASK } from './upscale-image/upscale-image.task';

const VIDEO_DEFAULTS = {
  duration: VIDEO_OUTPUT.defaultDuration,
  fps: VIDEO_OUTPUT.defaultFps,
  resolution: VIDEO_OUTPUT.defaultResolution,
};
const LAYER = { image_url: 'https://example.com/a.png', keyframes: [{ time: 0 }] };

/** Each contract: the least input it accepts, and what parsing it must fill in. */
const CASES: Array<{
  name: string;
  def: TaskDefinition<any>;
  minimal: Record<string, unknown>;
  defaults: Record<string, unknown>;
}> = [
  {
    name: 'generate_image',
    def: GENERATE_IMAGE_TASK,
    minimal: { character_description: 'a detective' },
    defaults: GENERATE_IMAGE_DEFAULTS,
  },
  {
    name: 'generate_video',
    def: GENERATE_VIDEO_TASK,
    minimal: { storyboard_images: ['https://example.com/f.jpg'], scene_description: 'an alley' },
    defaults: { ...VIDEO_DEFAULTS, ...GENERATE_VIDEO_DEFAULTS },
  },
  {
    name: 'render_animation',
    def: RENDER_ANIMATION_TASK,
    minimal: { layers: [LAYER] },
    defaults: { ...VIDEO_DEFAULTS, background: RENDER_ANIMATION_DEFAULTS.background },
  },
  {
    name: 'process_audio',
    def: PROCESS_AUDIO_TASK,
    minimal: { text: 'Hello.' },
    defaults: PROCESS_AUDIO_DEFAULTS,
  },
  {
    name: 'analyze_character',
    def: ANALYZE_CHARACTER_TASK,
    minimal: { image_urls: ['https://example.com/a.jpg'] },
    defaults: ANALYZE_CHARACTER_DEFAULTS,
  },
  {
    name: 'remove_background',
    def: REMOVE_BACKGROUND_TASK,
    minimal: { image_url: 'https://example.com/actor.jpg' },
    defaults: REMOVE_BACKGROUND_DEFAULTS,
  },
  {
    name: 'upscale_image',
    def: UPSCALE_IMAGE_TASK,
    minimal: { image_url: 'https://example.com/frame.png' },
    defaults: { ...UPSCALE_IMAGE_DEFAULTS, safety_check: false },
  },
];

describe('contract defaults', () => {
  it('covers every task type', () => {
    expect(CASES.map((c) => c.name).sort()).toEqual(TASK_DEFINITIONS.map((d) => d.type).sort());
  });

  it.each(CASES)('$name: parsing fills in the defaults', ({ def, minimal, defaults }) => {
    expect(validateTaskData(def, minimal)).toMatchObject(defaults);
  });

  it.each(CASES)('$name: fields sent as null get the default too', ({ def, minimal, defaults }) => {
    const nulls = Object.fromEntries(Object.keys(defaults).map((k) => [k, null]));
    expect(validateTaskData(def, { ...minimal, ...nulls })).toMatchObject(defaults);
  });

  it.each(CASES)('$name: given values are kept', ({ def, minimal, defaults }) => {
    // Any other valid value of each defaulted field: the first differing example of its kind.
    const other: Record<string, unknown> = {
      width: 512,
      height: 256,
      format: def === PROCESS_AUDIO_TASK ? 'wav' : 'png',
      duration: 3,
      fps: 30,
      resolution: '640x360',
      camera_angle: 'pan_left',
      framing: 'faces',
      lighting: 'night',
      background: '#112233',
      character_voice_profile: 'young_female',
      emotion: 'sad',
      pace: 'fast',
      background_noise: 'wind',
      include_embeddings: true,
      match_threshold: 0.5,
      quality: 'fast',
      scale: 2,
      safety_check: true,
    };
    const given = Object.fromEntries(Object.keys(defaults).map((k) => [k, other[k]]));
    expect(validateTaskData(def, { ...minimal, ...given })).toMatchObject(given);
  });

  it.each(CASES)(
    '$name: the estimate of the least input is that of the defaults',
    ({ def, minimal, defaults }) => {
      expect(def.estimateDuration(validateTaskData(def, minimal))).toBe(
        def.estimateDuration(validateTaskData(def, { ...minimal, ...defaults })),
      );
    },
  );

  it('fills nested defaults (a layer without easing), also when sent as null', () => {
    const data = validateTaskData(RENDER_ANIMATION_TASK, {
      layers: [LAYER, { ...LAYER, easing: null }, { ...LAYER, easing: 'ease_in' }],
    });
    expect(data.layers.map((l) => l.easing)).toEqual(['linear', 'linear', 'ease_in']);
    expect(data.layers.map((l) => [l.remove_background, l.remove_background_quality])).toEqual([
      [false, 'best'],
      [false, 'best'],
      [false, 'best'],
    ]);
  });

  it('leaves fields without a default absent', () => {
    const data = validateTaskData(GENERATE_IMAGE_TASK, { character_description: 'a detective' });
    expect(data.seed).toBeUndefined();
    expect(data.style_guide).toBeUndefined();
  });

  it("Swagger's default of every property is the contract's own default", () => {
    const classes: Type<object>[] = [
      ...TASK_DEFINITIONS.map((d) => d.dataClass),
      AnimationLayer,
      AnimationKeyframe,
    ];
    const checked: string[] = [];
    for (const cls of classes) {
      const blank = new cls() as Record<string, unknown>;
      const names = (
        (Reflect.getMetadata(DECORATORS.API_MODEL_PROPERTIES_ARRAY, cls.prototype) as string[]) ??
        []
      ).map((n) => n.replace(/^:/, ''));
      for (const name of names) {
        const swagger = Reflect.getMetadata(
          DECORATORS.API_MODEL_PROPERTIES,
          cls.prototype,
          name,
        ) as {
          default?: unknown;
        };
        expect({ property: `${cls.name}.${name}`, default: swagger.default }).toEqual({
          property: `${cls.name}.${name}`,
          default: blank[name],
        });
        if (blank[name] !== undefined) checked.push(`${cls.name}.${name}`);
      }
    }
    expect(checked).toEqual(
      expect.arrayContaining([
        'GenerateImageTaskData.width',
        'AnimationLayer.easing',
        'ProcessAudioTaskData.format',
      ]),
    );
  });
});
