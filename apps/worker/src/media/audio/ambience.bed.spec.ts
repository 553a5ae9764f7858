import { ambienceBed } from './ambience.bed';
import { rms } from './audio.dsp';

const SR = 16_000;

describe('ambienceBed', () => {
  it('is the plain ambience up to 30 s', async () => {
    const bed = await ambienceBed('rain_ambience', 10 * SR, SR, 3);
    expect(bed).toHaveLength(10 * SR);
    expect(await ambienceBed('no_such_bed', SR, SR, 3)).toBeNull();
  });

  it('joins 30 s segments without a level dip or jump at the seams', async () => {
    const length = 75 * SR;
    const bed = (await ambienceBed('rain_ambience', length, SR, 3))!;
    expect(bed).toHaveLength(length);
    const overall = rms(bed.subarray(SR, length - SR));
    // Seams at 29–30 s and 58–59 s; quarter-second windows across them stay near the overall level.
    for (const at of [28.5, 29, 29.25, 29.5, 29.75, 30, 58.25, 58.5, 58.75]) {
      const w = rms(bed.subarray(Math.round(at * SR), Math.round((at + 0.25) * SR)));
      expect(Math.abs(20 * Math.log10(w / overall))).toBeLessThan(2);
    }
  });

  it('stops when the signal aborts', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled');
    const run = ambienceBed('wind', 120 * SR, SR, 1, controller.signal);
    controller.abort(reason);
    await expect(run).rejects.toBe(reason);
  });
});
