import { ease, KeyframeTrack } from './keyframe.track';

const START = { x: 50, y: 40, scale: 1, rotation: 0, opacity: 1 };

describe('ease', () => {
  it.each(['linear', 'ease_in', 'ease_out', 'ease_in_out'] as const)(
    '%s runs from 0 to 1 and never backwards',
    (easing) => {
      expect(ease(easing, 0)).toBe(0);
      expect(ease(easing, 1)).toBe(1);
      let last = 0;
      for (let i = 1; i <= 100; i++) {
        const v = ease(easing, i / 100);
        expect(v).toBeGreaterThanOrEqual(last);
        last = v;
      }
    },
  );

  it('shapes the middle: in is slow, out is fast, in-out is symmetric', () => {
    expect(ease('linear', 0.25)).toBe(0.25);
    expect(ease('ease_in', 0.25)).toBeLessThan(0.1);
    expect(ease('ease_out', 0.25)).toBeGreaterThan(0.5);
    expect(ease('ease_in_out', 0.5)).toBeCloseTo(0.5);
    expect(ease('ease_in_out', 0.25) + ease('ease_in_out', 0.75)).toBeCloseTo(1);
  });
});

describe('KeyframeTrack', () => {
  it('interpolates between keyframes, sorted by time, holding outside them', () => {
    const track = new KeyframeTrack(
      [
        { time: 3, x: 300, opacity: 0 },
        { time: 1, x: 100, y: 10, scale: 2, rotation: 90 },
      ],
      'linear',
      START,
    );
    expect(track.at(0)).toEqual({ x: 100, y: 10, scale: 2, rotation: 90, opacity: 1 });
    expect(track.at(2)).toEqual({ x: 200, y: 10, scale: 2, rotation: 90, opacity: 0.5 });
    expect(track.at(5)).toEqual({ x: 300, y: 10, scale: 2, rotation: 90, opacity: 0 });
    expect(track.maxScale).toBe(2);
  });

  it('starts missing properties from the canvas centre defaults and carries them forward', () => {
    const track = new KeyframeTrack([{ time: 0 }, { time: 2, rotation: 720 }], 'linear', START);
    expect(track.at(1)).toEqual({ ...START, rotation: 360 });
  });

  it('applies the easing inside each segment', () => {
    const track = new KeyframeTrack(
      [
        { time: 0, x: 0 },
        { time: 1, x: 100 },
      ],
      'ease_in',
      START,
    );
    expect(track.at(0.5).x).toBeCloseTo(100 * ease('ease_in', 0.5));
  });

  it('a single keyframe holds still', () => {
    const track = new KeyframeTrack([{ time: 4, x: 7, y: 8 }], 'ease_out', START);
    expect(track.at(0)).toEqual(track.at(10));
  });
});
