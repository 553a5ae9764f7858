import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional, IsString, Length, ValidateBy } from 'class-validator';
import { QueueName } from '../../queues';
import { inputUrlProblem } from '../input-url.validator';
import type { TaskDefinition } from '../task-definition';

/** Built-in voices; any other value must be the URL of a WAV/MP3 reference to match. */
export const VOICE_PRESETS = [
  'narrator_male',
  'narrator_female',
  'detective_male',
  'young_female',
  'young_male',
  'elderly_male',
  'elderly_female',
  'british_male',
  'british_female',
  'scottish_male',
] as const;
export type VoicePreset = (typeof VOICE_PRESETS)[number];

export const AUDIO_EMOTIONS = [
  'neutral',
  'mysterious',
  'angry',
  'happy',
  'sad',
  'excited',
  'whisper',
  'fearful',
] as const;
export type AudioEmotion = (typeof AUDIO_EMOTIONS)[number];

export const AUDIO_PACES = ['slow', 'normal', 'fast'] as const;
export type AudioPace = (typeof AUDIO_PACES)[number];

export const BACKGROUND_NOISES = [
  'none',
  'rain_ambience',
  'city_night',
  'wind',
  'crowd',
  'room_tone',
  'forest',
] as const;
export type BackgroundNoise = (typeof BACKGROUND_NOISES)[number];

export const AUDIO_FORMATS = ['mp3', 'wav'] as const;
export type AudioFormat = (typeof AUDIO_FORMATS)[number];

/** What process_audio does when `task_data` leaves a field out (or sends null). */
export const PROCESS_AUDIO_DEFAULTS = {
  character_voice_profile: 'narrator_male',
  emotion: 'neutral',
  pace: 'normal',
  background_noise: 'none',
  format: 'mp3',
} as const satisfies {
  character_voice_profile: VoicePreset;
  emotion: AudioEmotion;
  pace: AudioPace;
  background_noise: BackgroundNoise;
  format: AudioFormat;
};

export function isVoicePreset(value: string): value is VoicePreset {
  return (VOICE_PRESETS as readonly string[]).includes(value);
}

/** A preset name, or an input URL (http(s) or s3:// in the project) under the IsInputUrl rule. */
function IsVoiceProfile(): PropertyDecorator {
  return ValidateBy({
    name: 'isVoiceProfile',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'string' &&
        value.length <= 2048 &&
        (isVoicePreset(value) || inputUrlProblem(value) === undefined),
      defaultMessage: (args) => {
        const value: unknown = args?.value;
        const looksLikeUrl = typeof value === 'string' && /^[a-z][a-z0-9+.-]*:/i.test(value);
        const why =
          typeof value === 'string' && value.length > 2048
            ? 'must be at most 2048 characters'
            : looksLikeUrl
              ? (inputUrlProblem(value) ?? 'must be a URL')
              : `must be a preset name (${VOICE_PRESETS.join(', ')}) or the URL of a WAV/MP3 reference`;
        return `${args?.property ?? 'character_voice_profile'} ${why}`;
      },
    },
  });
}

/**
 * `task_data` of process_audio. A property's initializer is its default (validateTaskData fills
 * it in when the input leaves it out or sends null); Swagger's `default` names the same constant.
 */
export class ProcessAudioTaskData {
  @ApiProperty({
    description: 'What is said.',
    example: 'The detective walked into the dimly lit room.',
    minLength: 1,
    maxLength: 5000,
  })
  @IsString()
  @Length(1, 5000)
  text!: string;

  @ApiPropertyOptional({
    description:
      `A voice preset (${VOICE_PRESETS.join(', ')}), or the http(s) URL of a WAV/MP3 reference ` +
      'recording whose pitch the voice is matched to.',
    example: 'detective_male',
    default: PROCESS_AUDIO_DEFAULTS.character_voice_profile,
    maxLength: 2048,
  })
  @IsOptional()
  @IsVoiceProfile()
  character_voice_profile: string = PROCESS_AUDIO_DEFAULTS.character_voice_profile;

  @ApiPropertyOptional({ enum: AUDIO_EMOTIONS, default: PROCESS_AUDIO_DEFAULTS.emotion })
  @IsOptional()
  @IsIn(AUDIO_EMOTIONS)
  emotion: AudioEmotion = PROCESS_AUDIO_DEFAULTS.emotion;

  @ApiPropertyOptional({ enum: AUDIO_PACES, default: PROCESS_AUDIO_DEFAULTS.pace })
  @IsOptional()
  @IsIn(AUDIO_PACES)
  pace: AudioPace = PROCESS_AUDIO_DEFAULTS.pace;

  @ApiPropertyOptional({
    enum: BACKGROUND_NOISES,
    default: PROCESS_AUDIO_DEFAULTS.background_noise,
    description: 'Ambience synthesized and mixed under the voice.',
  })
  @IsOptional()
  @IsIn(BACKGROUND_NOISES)
  background_noise: BackgroundNoise = PROCESS_AUDIO_DEFAULTS.background_noise;

  @ApiPropertyOptional({ enum: AUDIO_FORMATS, default: PROCESS_AUDIO_DEFAULTS.format })
  @IsOptional()
  @IsIn(AUDIO_FORMATS)
  format: AudioFormat = PROCESS_AUDIO_DEFAULTS.format;
}

export const PROCESS_AUDIO_TASK: TaskDefinition<ProcessAudioTaskData> = {
  type: 'process_audio',
  description: 'Spoken dialogue from text: voice, emotion, pace and ambience, as MP3 or WAV.',
  queue: QueueName.CpuIntensive,
  mediaKind: 'audio',
  dataClass: ProcessAudioTaskData,
  estimateDuration(data) {
    // Synthesis runs at ~300 characters per second here; a reference recording adds a fetch and
    // a decode.
    const reference = isVoicePreset(data.character_voice_profile) ? 0 : 3;
    return Math.max(2, Math.round(2 + data.text.length / 300 + reference));
  },
};
