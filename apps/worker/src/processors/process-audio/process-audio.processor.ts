import { createHash } from 'node:crypto';
import { Logger, type OnModuleDestroy } from '@nestjs/common';
import { GpuService } from '@app/gpu';
import {
  isVoicePreset,
  PROCESS_AUDIO_TASK,
  type AudioFormat,
  type ProcessAudioTaskData,
} from '@app/tasks';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { InputFetcher } from '../../inputs/input-fetcher';
import { ambienceBed } from '../../media/audio/ambience.bed';
import { resample } from '../../media/audio/audio.dsp';
import { mixDialogue } from '../../media/audio/dialogue.mixer';
import { EMOTION_PROSODY, PACE_FACTOR, colourVoice } from '../../media/audio/emotion.prosody';
import { decodeAudio, encodeMp3 } from '../../media/audio/ffmpeg.audio';
import { estimatePitch } from '../../media/audio/pitch.estimator';
import {
  SPEECH_SAMPLE_RATE,
  SpeechSynth,
  splitUtterances,
  type VoiceSettings,
} from '../../media/audio/speech.synth';
import { VOICE_PRESET_SETTINGS, voiceForReference } from '../../media/audio/voice.presets';
import { encodeWav } from '../../media/audio/wav.codec';
import { PermanentTaskError } from '../../runtime/task-errors';
import {
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from '../../runtime/task-processor';

export const OUTPUT_SAMPLE_RATE = 44_100;
/** Reference recordings are analysed at this rate: plenty for voice pitch (≤ 500 Hz). */
const ANALYSIS_RATE = 11_025;
/** Silence (ambience only) before the first word and after the last. */
const LEAD_SECONDS = 0.3;
const TAIL_SECONDS = 0.5;

const ENCODINGS: Record<AudioFormat, { extension: string; contentType: string; label: string }> = {
  mp3: { extension: 'mp3', contentType: 'audio/mpeg', label: 'MP3' },
  wav: { extension: 'wav', contentType: 'audio/wav', label: 'WAV' },
};

// Progress milestones.
const VOICE_READY = 0.15;
const SPEECH_DONE = 0.7;
const MIXED = 0.85;

interface ResolvedVoice {
  settings: VoiceSettings;
  label: string;
  referencePitchHz?: number;
  expectedPitchHz?: number;
}

/**
 * Spoken dialogue: eSpeak (mespeak) speaks the text sentence by sentence with the voice's and
 * emotion's pitch, rate and loudness; the emotion colours the sound (whisper vocoder, saturation,
 * filters, tremolo, room); the voice is resampled to 44.1 kHz, an ambience is synthesized and
 * mixed under it and the loudness normalized on tfjs, then encoded as MP3 or WAV. A reference
 * recording as voice profile is fetched, decoded by ffmpeg, and its median pitch (YIN) is matched.
 */
@TaskProcessorFor(PROCESS_AUDIO_TASK)
export class ProcessAudioProcessor implements TaskProcessor<ProcessAudioTaskData>, OnModuleDestroy {
  private readonly logger = new Logger(ProcessAudioProcessor.name);
  private readonly speech = new SpeechSynth();

  constructor(
    private readonly gpu: GpuService,
    private readonly inputs: InputFetcher,
  ) {}

  async onModuleDestroy(): Promise<void> {
    await this.speech.close();
  }

  async process(task: RunningTask<ProcessAudioTaskData>): Promise<TaskOutput> {
    const data = task.data;
    const { emotion, pace, format } = data;
    const background = data.background_noise;
    const profile = data.character_voice_profile;
    const fields = { task_id: task.taskId, project_id: task.projectId };
    const seed =
      createHash('sha256')
        .update(JSON.stringify([data.text, profile, emotion, pace]))
        .digest()
        .readUInt32BE(0) & 0x7fffffff;
    const started = Date.now();
    throwIfAborted(task.signal);

    await task.progress(0.02, 'loading_voice_model');
    await this.gpu.init();
    await this.speech.load();
    const voice = await this.resolveVoice(task, profile);
    throwIfAborted(task.signal);
    await task.progress(VOICE_READY, 'loading_voice_model');

    // Sentence by sentence: progress moves, a cancel is seen between sentences, and the emotion's
    // colouring and the resampling run on one sentence at a time, never blocking the loop long.
    const prosody = EMOTION_PROSODY[emotion];
    const paceFactor = PACE_FACTOR[pace];
    const utterances = splitUtterances(data.text);
    const lead = Math.round(LEAD_SECONDS * OUTPUT_SAMPLE_RATE);
    const pieces: Float32Array[] = [new Float32Array(lead)];
    const pause = new Float32Array(
      Math.round(prosody.sentencePause * paceFactor.pause * OUTPUT_SAMPLE_RATE),
    );
    await task.progress(VOICE_READY, 'synthesizing_speech');
    let reported = VOICE_READY;
    for (let i = 0; i < utterances.length; i++) {
      throwIfAborted(task.signal);
      const speech = await this.speech.speak(utterances[i], voice.settings, {
        pitch: voice.settings.pitch + prosody.pitchShift,
        speed: voice.settings.speed * prosody.speedFactor * paceFactor.speed,
        amplitude: prosody.amplitude,
        wordgap: prosody.wordgap + paceFactor.wordgap,
      });
      const coloured = colourVoice(trimSilence(speech), SPEECH_SAMPLE_RATE, emotion, seed + i);
      pieces.push(resample(coloured, SPEECH_SAMPLE_RATE, OUTPUT_SAMPLE_RATE));
      if (i < utterances.length - 1) pieces.push(pause);
      const fraction = VOICE_READY + ((SPEECH_DONE - VOICE_READY) * (i + 1)) / utterances.length;
      if (fraction - reported >= 0.05 || i === utterances.length - 1) {
        reported = fraction;
        await task.progress(fraction, 'synthesizing_speech');
      }
      await yieldToLoop();
    }
    pieces.push(new Float32Array(Math.round(TAIL_SECONDS * OUTPUT_SAMPLE_RATE)));

    await task.progress(SPEECH_DONE, 'mixing_audio');
    const voiceTrack = concat(pieces);
    throwIfAborted(task.signal);

    const ambience =
      background === 'none'
        ? null
        : await ambienceBed(background, voiceTrack.length, OUTPUT_SAMPLE_RATE, seed, task.signal);
    throwIfAborted(task.signal);
    const mix = await mixDialogue(
      this.gpu.tf,
      voiceTrack,
      ambience,
      OUTPUT_SAMPLE_RATE,
      task.signal,
    );
    await task.progress(MIXED, 'mixing_audio');
    throwIfAborted(task.signal);

    const encoding = ENCODINGS[format];
    const bytes =
      format === 'mp3'
        ? await encodeMp3(mix.samples, OUTPUT_SAMPLE_RATE, task.signal)
        : encodeWav(mix.samples, OUTPUT_SAMPLE_RATE, seed);
    await task.progress(0.95, 'mixing_audio');

    const duration = Math.round((mix.samples.length / OUTPUT_SAMPLE_RATE) * 1000) / 1000;
    const elapsed = Date.now() - started;
    this.logger.log(
      fields,
      `${duration} s ${encoding.label} (${bytes.length} bytes) in ${elapsed} ms, voice ${voice.label}, ` +
        `${emotion}/${pace}, background ${background}, mixed on ${this.gpu.backendName}`,
    );
    return {
      media: {
        kind: 'buffer',
        data: bytes,
        extension: encoding.extension,
        contentType: encoding.contentType,
      },
      metadata: {
        duration,
        format: encoding.label,
        sample_rate: OUTPUT_SAMPLE_RATE,
        channels: 1,
        ...(format === 'mp3' ? { bitrate: 128_000 } : { bit_depth: 16 }),
        voice: voice.label,
        ...(voice.referencePitchHz !== undefined
          ? {
              reference_pitch_hz: round1(voice.referencePitchHz),
              voice_pitch_hz: round1(voice.expectedPitchHz ?? voice.referencePitchHz),
            }
          : {}),
        emotion,
        pace,
        background_noise: background,
        loudness_dbfs: mix.outputLoudnessDb,
        peak: mix.peak,
        sentences: utterances.length,
        engine: 'espeak (mespeak 2.0)',
        backend: this.gpu.backendName,
        render_ms: elapsed,
      },
    };
  }

  private async resolveVoice(
    task: RunningTask<ProcessAudioTaskData>,
    profile: string,
  ): Promise<ResolvedVoice> {
    if (isVoicePreset(profile)) return { settings: VOICE_PRESET_SETTINGS[profile], label: profile };
    const field = 'task_data.character_voice_profile';
    const { data } = await this.inputs.fetch(profile, {
      field,
      signal: task.signal,
      accept: 'audio',
      projectId: task.projectId,
    });
    let samples: Float32Array;
    try {
      samples = await decodeAudio(data, ANALYSIS_RATE, task.signal, 30);
    } catch (err) {
      if (task.signal.aborted) throw task.signal.reason;
      throw new InputFetchError(
        field,
        InputFetchError.redactUrl(profile),
        false,
        `not decodable audio (${err instanceof Error ? err.message : String(err)})`,
        undefined,
        { cause: err },
      );
    }
    await yieldToLoop();
    const pitch = estimatePitch(samples, ANALYSIS_RATE);
    if (!pitch) {
      throw new PermanentTaskError(
        `${field}: no voiced sound in the reference recording to take a pitch from`,
      );
    }
    const base = voiceForReference(pitch.f0);
    const matched = await this.speech.pitchFor(base, pitch.f0);
    this.logger.log(
      { task_id: task.taskId, project_id: task.projectId },
      `reference voice at ${pitch.f0.toFixed(1)} Hz ` +
        `(${samples.length} samples, ${Math.round(pitch.voicedShare * 100)} % voiced) → ${base.variant} pitch ${matched.pitch.toFixed(1)}`,
    );
    return {
      settings: { ...base, pitch: matched.pitch },
      label: 'reference',
      referencePitchHz: pitch.f0,
      expectedPitchHz: matched.expectedHz,
    };
  }
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

function yieldToLoop(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** eSpeak pads each utterance with silence; trimmed so sentence pauses are ours alone. */
function trimSilence(x: Float32Array, threshold = 0.002): Float32Array {
  let start = 0;
  let end = x.length;
  while (start < end && Math.abs(x[start]) < threshold) start++;
  while (end > start && Math.abs(x[end - 1]) < threshold) end--;
  // Keep 20 ms either side so consonant onsets and releases are not clipped.
  const margin = Math.round(0.02 * SPEECH_SAMPLE_RATE);
  return x.subarray(Math.max(0, start - margin), Math.min(x.length, end + margin));
}

function round1(v: number): number {
  return Math.round(v * 10) / 10;
}
