import { spawn } from 'node:child_process';
import { TestFileServer, waitFor } from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const FFMPEG = (require('@ffmpeg-installer/ffmpeg') as { path: string }).path;

/** Runs the bundled ffmpeg on `input`: what it says on stderr and what it writes on stdout. */
function ffmpeg(
  args: string[],
  input: Buffer,
): Promise<{ stderr: string; stdout: Buffer; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(FFMPEG, ['-hide_banner', '-nostdin', ...args]);
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdin.on('error', () => undefined);
    child.on('error', reject);
    child.on('close', (code) => resolve({ stderr, stdout: Buffer.concat(out), code }));
    child.stdin.end(input);
  });
}

/** Codec line and decoded samples (mono float at the file's own rate) of an audio file. */
async function probe(bytes: Buffer): Promise<{ stream: string; samples: Float32Array }> {
  const { stderr, stdout, code } = await ffmpeg(
    ['-i', 'pipe:0', '-f', 'f32le', '-ac', '1', 'pipe:1'],
    bytes,
  );
  expect(code).toBe(0);
  const stream = /Stream #0:0.*Audio: (.*)/.exec(stderr)?.[1] ?? '';
  const samples = new Float32Array(
    stdout.buffer.slice(stdout.byteOffset, stdout.byteOffset + (stdout.length & ~3)),
  );
  return { stream, samples };
}

function rms(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v * v;
  return Math.sqrt(s / Math.max(1, x.length));
}

/**
 * A 2.5 s voice-like reference at 210 Hz: a harmonic tone with a little vibrato and syllable-rate
 * gaps, as a 16-bit WAV.
 */
function referenceWav(f0: number): Buffer {
  const sr = 16_000;
  const n = Math.round(2.5 * sr);
  const body = Buffer.alloc(n * 2);
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const t = i / sr;
    phase += (2 * Math.PI * f0 * (1 + 0.01 * Math.sin(2 * Math.PI * 5 * t))) / sr;
    const syllable = Math.max(0, Math.sin(2 * Math.PI * 2 * t));
    let v = 0;
    for (let h = 1; h <= 8; h++) v += Math.sin(h * phase) / h;
    body.writeInt16LE(Math.round(v * syllable * 9000), i * 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + body.length, 4);
  header.write('WAVEfmt ', 8, 'latin1');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(sr, 24);
  header.writeUInt32LE(sr * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(body.length, 40);
  return Buffer.concat([header, body]);
}

/** Seed 000 "Audio Processing Task" / seed 004 scenario 3, end to end with a real worker. */
describe('process_audio end to end', () => {
  const service = new TestService({ env: { WORKER_QUEUES: 'cpu_intensive' } });
  const files = new TestFileServer();
  let base = '';

  beforeAll(async () => {
    files.set('/voices/detective.wav', { body: referenceWav(210), contentType: 'audio/wav' });
    base = await files.start();
    await service.start();
  });
  afterAll(async () => {
    await service.close();
    await files.stop();
  });

  const run = async (taskData: Record<string, unknown>) => {
    const submitted = await service.http.post('/tasks/submit', {
      project_id: 'detective_series_001',
      task_type: 'process_audio',
      task_data: taskData,
      priority: 2,
    });
    expect(submitted.status).toBe(201);
    expect(submitted.body.estimated_duration).toBeGreaterThan(0);
    const id = submitted.body.task_id as string;
    const steps = new Set<string>();
    const final = await waitFor(
      async () => {
        const s = (await service.http.get(`/tasks/${id}/status`)).body;
        steps.add(s.current_step);
        return ['completed', 'failed', 'cancelled'].includes(s.status) ? s : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 20 },
    );
    expect(final.error).toBeNull();
    expect(final.status).toBe('completed');
    const media = await fetch(final.result.media_url);
    expect(media.status).toBe(200);
    const bytes = Buffer.from(await media.arrayBuffer());
    expect(bytes.length).toBe(final.result.metadata.file_size);
    expect(final.result.media_url).toContain(`/projects/detective_series_001/audio/${id}/output.`);
    return { final, steps, bytes, contentType: media.headers.get('content-type') };
  };

  it('scenario 3: MP3 dialogue in a voice matched to a fetched reference, with rain', async () => {
    const { final, steps, bytes, contentType } = await run({
      text: 'The rain had not stopped for three days. Somewhere in this city, a witness was lying.',
      character_voice_profile: `${base}/voices/detective.wav`,
      emotion: 'mysterious',
      pace: 'slow',
      background_noise: 'rain_ambience',
    });
    expect(files.hits.get('/voices/detective.wav')).toBe(1);
    expect(contentType).toBe('audio/mpeg');
    const meta = final.result.metadata;
    expect(meta).toMatchObject({
      format: 'MP3',
      sample_rate: 44_100,
      channels: 1,
      voice: 'reference',
      emotion: 'mysterious',
      pace: 'slow',
      background_noise: 'rain_ambience',
    });
    expect(Math.abs(meta.reference_pitch_hz - 210)).toBeLessThan(210 * 0.03);
    for (const step of ['loading_voice_model', 'synthesizing_speech', 'mixing_audio'])
      expect(steps).toContain(step);

    const { stream, samples } = await probe(bytes);
    expect(stream).toMatch(/^mp3\b.*44100 Hz, mono/);
    expect(Math.abs(samples.length / 44_100 - meta.duration)).toBeLessThan(0.05);
    expect(meta.duration).toBeGreaterThan(3);
  });

  it('background noise changes the output; wav format works', async () => {
    const text = 'Keep your voice down. They can hear us.';
    const dry = await run({ text, format: 'wav', character_voice_profile: 'young_female' });
    const windy = await run({
      text,
      format: 'wav',
      character_voice_profile: 'young_female',
      background_noise: 'wind',
    });

    for (const r of [dry, windy]) {
      expect(r.contentType).toBe('audio/wav');
      expect(r.bytes.subarray(0, 4).toString('latin1')).toBe('RIFF');
      expect(r.final.result.metadata).toMatchObject({
        format: 'WAV',
        sample_rate: 44_100,
        channels: 1,
      });
    }
    const a = await probe(dry.bytes);
    const b = await probe(windy.bytes);
    expect(a.stream).toMatch(/^pcm_s16le.*44100 Hz.*mono/);
    expect(Math.abs(a.samples.length / 44_100 - dry.final.result.metadata.duration)).toBeLessThan(
      0.05,
    );
    expect(b.samples.length).toBe(a.samples.length);
    // Before the first word: silence without ambience, wind with it.
    expect(rms(a.samples.subarray(1000, 12_000))).toBeLessThan(0.002);
    expect(rms(b.samples.subarray(1000, 12_000))).toBeGreaterThan(0.01);
  });

  it('refuses bad task_data with a 400 naming the field', async () => {
    const submit = (taskData: Record<string, unknown>) =>
      service.http.post('/tasks/submit', {
        project_id: 'detective_series_001',
        task_type: 'process_audio',
        task_data: taskData,
      });
    const cases: [Record<string, unknown>, RegExp][] = [
      [{}, /task_data\.text/],
      [{ text: 'x'.repeat(5001) }, /task_data\.text/],
      [{ text: 'hi', emotion: 'bored' }, /task_data\.emotion/],
      [{ text: 'hi', pace: 'warp' }, /task_data\.pace/],
      [{ text: 'hi', background_noise: 'thunder' }, /task_data\.background_noise/],
      [{ text: 'hi', format: 'ogg' }, /task_data\.format/],
      [
        { text: 'hi', character_voice_profile: 'gandalf' },
        /task_data\.character_voice_profile must be a preset name/,
      ],
      [
        { text: 'hi', character_voice_profile: 'ftp://x/voice.wav' },
        /task_data\.character_voice_profile/,
      ],
      [
        { text: 'hi', character_voice_profile: 'http://x/../voice.wav' },
        /task_data\.character_voice_profile.*traversal/,
      ],
    ];
    for (const [data, message] of cases) {
      const res = await submit(data);
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body.message)).toMatch(message);
    }
  });
});
