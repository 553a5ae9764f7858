import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { estimatePitch } from './pitch.estimator';
import { resample } from './audio.dsp';
import { decodeWav } from './wav.codec';

/** eSpeak's own rate: mespeak renders 22,050 Hz mono. */
export const SPEECH_SAMPLE_RATE = 22_050;

/** A voice as eSpeak understands it: language voice, variant (timbre) and base pitch 0–99. */
export interface VoiceSettings {
  voice: 'en/en-us' | 'en/en-rp' | 'en/en-sc' | 'en/en';
  variant: string;
  pitch: number;
  /** Words per minute at normal pace. */
  speed: number;
}

export interface SpeakOptions {
  pitch: number;
  speed: number;
  amplitude: number;
  /** Extra gap between words, 10 ms units. */
  wordgap: number;
}

const VOICE_FILES = ['en-us', 'en-rp', 'en-sc', 'en'] as const;
const CALIBRATION_TEXT = 'A quiet voice reads this calibration line aloud, slowly and clearly.';

/**
 * mespeak's emscripten heap breaks after roughly 75 utterances in one instance ("Bad data:
 * en_dict", then a fatal V8 error that kills the process). Each engine therefore lives in a worker
 * thread that is replaced well before that; the thread also keeps synthesis off the event loop.
 */
const MAX_UTTERANCES_PER_ENGINE = 25;
const MAX_CHARS_PER_ENGINE = 2_500;

/** The worker thread's code (plain JS: it must run under ts-node, jest and the built app alike). */
const ENGINE_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
// mespeak warns on stderr that it is not in a browser; that is expected here.
const warn = console.warn;
console.warn = () => undefined;
const m = require(workerData.main);
console.warn = warn;
m.loadConfig(require(workerData.config));
for (const voice of workerData.voices) m.loadVoice(require(voice));
parentPort.on('message', ({ id, text, options }) => {
  try {
    const wav = m.speak(text, Object.assign({ rawdata: 'array' }, options));
    if (!wav) throw new Error('no audio');
    const bytes = Uint8Array.from(wav);
    parentPort.postMessage({ id, wav: bytes }, [bytes.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
parentPort.postMessage({ ready: true });
`;

interface EngineReply {
  id?: number;
  ready?: boolean;
  wav?: Uint8Array;
  error?: string;
}

/** One mespeak instance in a worker thread; requests are answered in order. */
class SpeechEngine {
  utterances = 0;
  chars = 0;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (b: Buffer) => void; reject: (e: Error) => void }
  >();
  private failure?: Error;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: EngineReply) => {
      if (reply.id === undefined) return;
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.wav)
        waiter?.resolve(Buffer.from(reply.wav.buffer, reply.wav.byteOffset, reply.wav.byteLength));
      else waiter?.reject(new Error(`speech synthesizer failed: ${reply.error ?? 'no audio'}`));
    });
    const fail = (err: Error) => {
      this.failure = err;
      for (const waiter of this.pending.values()) waiter.reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`speech engine thread exited (${code})`)));
  }

  static start(): Promise<SpeechEngine> {
    // createRequire: inside the webpack bundle a plain require.resolve yields a module id.
    const nodeRequire = createRequire(__filename);
    const dir = path.dirname(nodeRequire.resolve('mespeak/package.json'));
    const worker = new Worker(ENGINE_SOURCE, {
      eval: true,
      workerData: {
        main: nodeRequire.resolve('mespeak'),
        config: path.join(dir, 'src', 'mespeak_config.json'),
        voices: VOICE_FILES.map((v) => path.join(dir, 'voices', 'en', `${v}.json`)),
      },
    });
    // An idle engine must not keep the process alive.
    worker.unref();
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      worker.once('error', onError);
      worker.once('message', () => {
        worker.off('error', onError);
        resolve(new SpeechEngine(worker));
      });
    });
  }

  speak(text: string, options: Record<string, unknown>): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    this.utterances += 1;
    this.chars += text.length;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, text, options });
    });
  }

  get worn(): boolean {
    return (
      this.failure !== undefined ||
      this.utterances >= MAX_UTTERANCES_PER_ENGINE ||
      this.chars >= MAX_CHARS_PER_ENGINE
    );
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * eSpeak (compiled to JS by mespeak) as a speech synthesizer, run in a worker thread that is
 * recycled every few dozen utterances. Calls are serialized: one engine, one utterance at a time.
 */
export class SpeechSynth {
  private readonly calibrations = new Map<string, { slope: number; intercept: number }>();
  private engine?: Promise<SpeechEngine>;
  private queue: Promise<unknown> = Promise.resolve();

  /** Starts the engine (~0.1–0.3 s) so the first utterance does not pay for it. */
  async load(): Promise<void> {
    await this.serialized(() => this.ready());
  }

  async close(): Promise<void> {
    const engine = this.engine;
    this.engine = undefined;
    if (engine) await (await engine.catch(() => undefined))?.stop();
  }

  /** One utterance as float PCM at SPEECH_SAMPLE_RATE. */
  speak(text: string, voice: VoiceSettings, options: SpeakOptions): Promise<Float32Array> {
    return this.serialized(async () => {
      const engine = await this.ready();
      const wav = await engine.speak(text, {
        voice: voice.voice,
        variant: voice.variant,
        pitch: Math.round(Math.min(99, Math.max(0, options.pitch))),
        speed: Math.round(Math.min(450, Math.max(80, options.speed))),
        amplitude: Math.round(Math.min(200, Math.max(0, options.amplitude))),
        wordgap: Math.max(0, Math.round(options.wordgap)),
      });
      const { samples, sampleRate } = decodeWav(wav);
      return sampleRate === SPEECH_SAMPLE_RATE
        ? samples
        : resample(samples, sampleRate, SPEECH_SAMPLE_RATE);
    });
  }

  /**
   * The pitch parameter (0–99) at which this voice speaks with median f0 `targetHz`, from a
   * linear fit of two calibration utterances (eSpeak's pitch scale is close to linear in Hz).
   * Also reports the f0 actually reachable, since the parameter range is bounded.
   */
  async pitchFor(
    voice: VoiceSettings,
    targetHz: number,
  ): Promise<{ pitch: number; expectedHz: number }> {
    const fit = await this.calibrate(voice);
    const pitch = Math.min(99, Math.max(0, (targetHz - fit.intercept) / fit.slope));
    return { pitch, expectedHz: fit.intercept + fit.slope * pitch };
  }

  private async calibrate(voice: VoiceSettings): Promise<{ slope: number; intercept: number }> {
    const key = `${voice.voice}+${voice.variant}`;
    const cached = this.calibrations.get(key);
    if (cached) return cached;
    const measure = async (pitch: number): Promise<number> => {
      const x = await this.speak(CALIBRATION_TEXT, voice, {
        pitch,
        speed: 160,
        amplitude: 100,
        wordgap: 0,
      });
      const f0 = estimatePitch(x, SPEECH_SAMPLE_RATE)?.f0;
      if (!f0) throw new Error(`could not measure the pitch of voice ${key}`);
      return f0;
    };
    const low = await measure(15);
    const high = await measure(85);
    const slope = Math.max(0.1, (high - low) / 70);
    const fit = { slope, intercept: low - slope * 15 };
    this.calibrations.set(key, fit);
    return fit;
  }

  /** The current engine, replaced by a fresh one when worn out or broken. */
  private async ready(): Promise<SpeechEngine> {
    const current = await this.engine?.catch(() => undefined);
    if (current && !current.worn) return current;
    if (current) void current.stop();
    this.engine = SpeechEngine.start();
    this.engine.catch(() => {
      this.engine = undefined;
    });
    return this.engine;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * Splits text into utterances of at most ~`maxChars` at sentence, then clause, then word
 * boundaries: eSpeak blocks the event loop for the length of each call.
 */
export function splitUtterances(text: string, maxChars = 240): string[] {
  const sentences = text
    .replace(/\s+/g, ' ')
    .trim()
    .split(/(?<=[.!?…;:])\s+/)
    .filter((s) => s.length > 0);
  const out: string[] = [];
  for (const sentence of sentences) {
    if (sentence.length <= maxChars) {
      out.push(sentence);
      continue;
    }
    let current = '';
    for (const word of sentence.split(' ')) {
      if (current.length > 0 && current.length + 1 + word.length > maxChars) {
        out.push(current);
        current = '';
      }
      // A single "word" longer than the limit (a URL, a hash) is cut hard.
      for (let w = word; w.length > 0; w = w.slice(maxChars)) {
        const piece = w.slice(0, maxChars);
        current = current.length > 0 ? `${current} ${piece}` : piece;
        if (current.length >= maxChars) {
          out.push(current);
          current = '';
        }
      }
    }
    if (current.length > 0) out.push(current);
  }
  return out;
}
