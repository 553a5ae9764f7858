import { rms } from './audio.dsp';
import { estimatePitch } from './pitch.estimator';
import {
  SPEECH_SAMPLE_RATE,
  SpeechSynth,
  splitUtterances,
  type VoiceSettings,
} from './speech.synth';

const MALE: VoiceSettings = { voice: 'en/en-us', variant: 'm3', pitch: 40, speed: 165 };
const OPTIONS = { pitch: 40, speed: 165, amplitude: 100, wordgap: 0 };

describe('splitUtterances', () => {
  it('splits at sentence ends and keeps every word', () => {
    const text = 'Who is there?  Nobody answered.\nThe door creaked; then silence!';
    expect(splitUtterances(text)).toEqual([
      'Who is there?',
      'Nobody answered.',
      'The door creaked;',
      'then silence!',
    ]);
  });

  it('cuts a sentence longer than the limit at word boundaries, and an endless word hard', () => {
    const long = Array.from({ length: 100 }, (_, i) => `word${i}`).join(' ');
    const parts = splitUtterances(long, 50);
    expect(parts.every((p) => p.length <= 50)).toBe(true);
    expect(parts.join(' ')).toBe(long);
    expect(splitUtterances('x'.repeat(120), 50).map((p) => p.length)).toEqual([50, 50, 20]);
  });
});

describe('SpeechSynth', () => {
  const synth = new SpeechSynth();
  afterAll(() => synth.close());

  it('speaks at 22,050 Hz with a male pitch, and higher when asked', async () => {
    const low = await synth.speak('The detective looked around the empty room.', MALE, OPTIONS);
    const high = await synth.speak('The detective looked around the empty room.', MALE, {
      ...OPTIONS,
      pitch: 90,
    });
    expect(low.length / SPEECH_SAMPLE_RATE).toBeGreaterThan(1.5);
    expect(rms(low)).toBeGreaterThan(0.02);
    const f0Low = estimatePitch(low, SPEECH_SAMPLE_RATE)!.f0;
    const f0High = estimatePitch(high, SPEECH_SAMPLE_RATE)!.f0;
    expect(f0Low).toBeGreaterThan(70);
    expect(f0Low).toBeLessThan(140);
    expect(f0High).toBeGreaterThan(f0Low * 1.3);
  });

  it('survives far more utterances than one mespeak instance does (~75)', async () => {
    const lengths: number[] = [];
    for (let i = 0; i < 90; i++) {
      lengths.push(
        (await synth.speak(`Line number ${i} of the long scene.`, MALE, OPTIONS)).length,
      );
    }
    expect(lengths.every((n) => n > SPEECH_SAMPLE_RATE * 0.5)).toBe(true);
  });

  it('serializes concurrent callers and answers each with its own text', async () => {
    const [short, long] = await Promise.all([
      synth.speak('Yes.', MALE, OPTIONS),
      synth.speak('No, absolutely not, not tonight and not ever again.', MALE, OPTIONS),
    ]);
    expect(long.length).toBeGreaterThan(short.length * 3);
  });

  it('finds the pitch parameter that gives a target pitch', async () => {
    const { pitch, expectedHz } = await synth.pitchFor(MALE, 130);
    expect(expectedHz).toBeCloseTo(130, 0);
    const x = await synth.speak('A quiet evening in a small town by the sea.', MALE, {
      ...OPTIONS,
      pitch,
    });
    const f0 = estimatePitch(x, SPEECH_SAMPLE_RATE)!.f0;
    expect(Math.abs(f0 / 130 - 1)).toBeLessThan(0.1);
  });
});
