import type { VoicePreset } from '@app/tasks';
import type { VoiceSettings } from './speech.synth';

/** eSpeak settings behind each preset: language voice (accent), variant (timbre), pitch, rate. */
export const VOICE_PRESET_SETTINGS: Record<VoicePreset, VoiceSettings> = {
  narrator_male: { voice: 'en/en-us', variant: 'm3', pitch: 40, speed: 165 },
  narrator_female: { voice: 'en/en-us', variant: 'f2', pitch: 50, speed: 165 },
  detective_male: { voice: 'en/en-us', variant: 'm1', pitch: 28, speed: 155 },
  young_female: { voice: 'en/en-us', variant: 'f4', pitch: 65, speed: 180 },
  young_male: { voice: 'en/en-us', variant: 'm2', pitch: 60, speed: 180 },
  elderly_male: { voice: 'en/en-rp', variant: 'm7', pitch: 22, speed: 140 },
  elderly_female: { voice: 'en/en-rp', variant: 'f3', pitch: 35, speed: 140 },
  british_male: { voice: 'en/en-rp', variant: 'm1', pitch: 42, speed: 165 },
  british_female: { voice: 'en/en-rp', variant: 'f1', pitch: 55, speed: 165 },
  scottish_male: { voice: 'en/en-sc', variant: 'm4', pitch: 40, speed: 160 },
};

/** Voice for a reference recording: a timbre on the matching side of the male/female divide. */
export function voiceForReference(f0: number): VoiceSettings {
  return f0 >= 165
    ? { voice: 'en/en-us', variant: 'f2', pitch: 50, speed: 165 }
    : { voice: 'en/en-us', variant: 'm3', pitch: 40, speed: 165 };
}
