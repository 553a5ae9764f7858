import { Logger } from '@nestjs/common';
import { TestFileServer } from '@app/testing';
import { GpuService } from '@app/gpu';
import { InputFetchError } from '../../inputs/input-fetch.error';
import { PROCESS_AUDIO_TASK, validateTaskData, type ProcessAudioTaskData } from '@app/tasks';
import { rms, resample } from '../../media/audio/audio.dsp';
import { decodeAudio } from '../../media/audio/ffmpeg.audio';
import { estimatePitch } from '../../media/audio/pitch.estimator';
import { SpeechSynth } from '../../media/audio/speech.synth';
import { decodeWav, encodeWav } from '../../media/audio/wav.codec';
import type { RunningTask, TaskOutput } from '../../runtime/task-processor';
import { startProcessor } from '../../../test/support/processor.harness';
import { ProcessAudioModule } from './process-audio.module';
import { ProcessAudioProcessor } from './process-audio.processor';

const LINE = 'The detective walked into the dimly lit room. Nobody had been here for years.';

/** A running task whose data is `input` (over the spec's text) parsed by the contract. */
function runningTask(input: Record<string, unknown>, signal = new AbortController().signal) {
  const progress: [number, string][] = [];
  const task: RunningTask<ProcessAudioTaskData> = {
    taskId: 'task-1',
    projectId: 'project-1',
    taskType: 'process_audio',
    attempt: 1,
    data: validateTaskData(PROCESS_AUDIO_TASK, { text: LINE, ...input }),
    signal,
    progress: async (fraction, step) => {
      progress.push([fraction, step]);
    },
  };
  return { task, progress };
}

function bytes(output: TaskOutput): Buffer {
  if (output.media.kind !== 'buffer') throw new Error('expected in-memory audio');
  return output.media.data;
}

function voicePitch(output: TaskOutput): number {
  const { samples, sampleRate } = decodeWav(bytes(output));
  const f0 = estimatePitch(resample(samples, sampleRate, 11_025), 11_025)?.f0;
  if (!f0) throw new Error('no pitch in output');
  return f0;
}

/** A reference recording: eSpeak's female timbre at a high pitch, as a 16-bit WAV. */
async function referenceWav(variant: string, pitch: number): Promise<Buffer> {
  const synth = new SpeechSynth();
  const x = await synth.speak(
    'I have been waiting for you all evening, and the night is not over yet.',
    { voice: 'en/en-us', variant, pitch, speed: 160 },
    { pitch, speed: 160, amplitude: 100, wordgap: 0 },
  );
  await synth.close();
  return encodeWav(x, 22_050);
}

describe('ProcessAudioProcessor', () => {
  let processor: ProcessAudioProcessor;
  let gpu: GpuService;
  const server = new TestFileServer();
  let base: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    Logger.overrideLogger(false);
    const files: Record<string, [string, Buffer]> = {
      '/high.wav': ['audio/wav', await referenceWav('f2', 90)],
      '/low.wav': ['audio/wav', await referenceWav('m3', 10)],
      '/noise.txt': ['audio/wav', Buffer.from('definitely not audio')],
    };
    for (const [path, [contentType, body]] of Object.entries(files))
      server.set(path, { body, contentType });
    base = await server.start();
    ({ processor, gpu, close } = await startProcessor(ProcessAudioModule, ProcessAudioProcessor));
  });

  afterAll(async () => {
    await close();
    await server.stop();
    Logger.overrideLogger(new Logger());
  });

  it('speaks the line as a 44.1 kHz mono WAV with the steps in order and no tensor left', async () => {
    const before = gpu.tensorCount();
    const { task, progress } = runningTask({ format: 'wav' });
    const output = await processor.process(task);
    expect(gpu.tensorCount()).toBe(before);

    expect(output.media).toMatchObject({
      kind: 'buffer',
      extension: 'wav',
      contentType: 'audio/wav',
    });
    const { samples, sampleRate } = decodeWav(bytes(output));
    expect(sampleRate).toBe(44_100);
    expect(output.metadata).toMatchObject({
      format: 'WAV',
      sample_rate: 44_100,
      channels: 1,
      voice: 'narrator_male',
      emotion: 'neutral',
      pace: 'normal',
      background_noise: 'none',
      backend: gpu.backendName,
    });
    expect(output.metadata.duration).toBeCloseTo(samples.length / 44_100, 3);
    // Two sentences of speech: a few seconds, loud enough, normalized near −18 dBFS.
    expect(output.metadata.duration).toBeGreaterThan(3);
    expect(output.metadata.duration).toBeLessThan(10);
    expect(output.metadata.loudness_dbfs).toBeGreaterThan(-19);
    expect(output.metadata.loudness_dbfs).toBeLessThan(-17);
    expect(Math.abs(samples[0])).toBeLessThan(1e-3);

    const steps = [...new Set(progress.map(([, step]) => step))];
    expect(steps).toEqual(['loading_voice_model', 'synthesizing_speech', 'mixing_audio']);
    const fractions = progress.map(([f]) => f);
    expect([...fractions].sort((a, b) => a - b)).toEqual(fractions);
  });

  it('encodes MP3 that ffmpeg decodes to the same duration', async () => {
    const output = await processor.process(runningTask({}).task);
    expect(output.media).toMatchObject({ extension: 'mp3', contentType: 'audio/mpeg' });
    expect(output.metadata.format).toBe('MP3');
    const decoded = await decodeAudio(bytes(output), 44_100);
    expect(Math.abs(decoded.length / 44_100 - (output.metadata.duration as number))).toBeLessThan(
      0.05,
    );
  });

  it('pace changes the length, emotion the pitch', async () => {
    const slow = await processor.process(runningTask({ pace: 'slow', format: 'wav' }).task);
    const fast = await processor.process(runningTask({ pace: 'fast', format: 'wav' }).task);
    expect(slow.metadata.duration as number).toBeGreaterThan(
      (fast.metadata.duration as number) * 1.3,
    );

    const sad = await processor.process(runningTask({ emotion: 'sad', format: 'wav' }).task);
    const excited = await processor.process(
      runningTask({ emotion: 'excited', format: 'wav' }).task,
    );
    expect(voicePitch(excited)).toBeGreaterThan(voicePitch(sad) * 1.15);
  });

  it('whispers without a voiced pitch', async () => {
    const normal = await processor.process(runningTask({ format: 'wav' }).task);
    const whisper = await processor.process(
      runningTask({ emotion: 'whisper', format: 'wav' }).task,
    );
    const voiced = (o: TaskOutput) => {
      const { samples } = decodeWav(bytes(o));
      return estimatePitch(resample(samples, 44_100, 11_025), 11_025)?.voicedShare ?? 0;
    };
    expect(voiced(normal)).toBeGreaterThan(0.4);
    expect(voiced(whisper)).toBeLessThan(voiced(normal) / 2);
  });

  it('mixes the ambience under the voice', async () => {
    const dry = decodeWav(
      bytes(await processor.process(runningTask({ format: 'wav' }).task)),
    ).samples;
    const rainy = decodeWav(
      bytes(
        await processor.process(
          runningTask({ format: 'wav', background_noise: 'rain_ambience' }).task,
        ),
      ),
    ).samples;
    expect(rainy.length).toBe(dry.length);
    // The lead-in before the first word: silence when dry, rain when not.
    const lead = (x: Float32Array) => rms(x.subarray(2_000, 12_000));
    expect(lead(dry)).toBeLessThan(1e-3);
    expect(lead(rainy)).toBeGreaterThan(0.01);
    // ... and well under the voice.
    expect(lead(rainy)).toBeLessThan(rms(rainy) / 3);
  });

  it('matches the pitch of a reference recording fetched from its URL', async () => {
    const high = await processor.process(
      runningTask({ character_voice_profile: `${base}/high.wav`, format: 'wav' }).task,
    );
    const low = await processor.process(
      runningTask({ character_voice_profile: `${base}/low.wav`, format: 'wav' }).task,
    );
    expect([...server.hits.keys()]).toEqual(expect.arrayContaining(['/high.wav', '/low.wav']));
    const highRef = high.metadata.reference_pitch_hz as number;
    const lowRef = low.metadata.reference_pitch_hz as number;
    expect(high.metadata.voice).toBe('reference');
    expect(highRef).toBeGreaterThan(lowRef * 1.8);
    // The spoken voice lands within 12 % of the reference's median pitch.
    expect(Math.abs(voicePitch(high) / highRef - 1)).toBeLessThan(0.12);
    expect(Math.abs(voicePitch(low) / lowRef - 1)).toBeLessThan(0.12);
  });

  it('fails permanently on a reference that is not audio', async () => {
    const run = processor.process(
      runningTask({ character_voice_profile: `${base}/noise.txt` }).task,
    );
    await expect(run).rejects.toThrow(InputFetchError);
    await expect(run).rejects.toMatchObject({
      retryable: false,
      field: 'task_data.character_voice_profile',
    });
  });

  it('stops with the abort reason when cancelled', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled by test');
    const { task } = runningTask({ text: `${LINE} `.repeat(30) }, controller.signal);
    const run = processor.process(task);
    setTimeout(() => controller.abort(reason), 300);
    const started = Date.now();
    await expect(run).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
