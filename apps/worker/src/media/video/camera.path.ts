import { CAMERA_PRESETS, type CameraPreset } from '@app/tasks';

/** A point of interest in the frame, 0..1 from the left and top edges. */
export interface FramePoint {
  x: number;
  y: number;
}

/**
 * The crop a virtual camera sees at one moment, as `tf.image.cropAndResize` wants it:
 * [y1, x1, y2, x2] in 0..1 of the source (which already has the output's aspect ratio).
 */
export type CameraBox = [number, number, number, number];

interface Shot {
  zoom: number;
  x: number;
  y: number;
}

/** Moves start and end gently, as a camera operator would. */
function smooth(u: number): number {
  const c = Math.min(1, Math.max(0, u));
  return c * c * (3 - 2 * c);
}

const lerp = (a: number, b: number, u: number) => a + (b - a) * u;

/** How far either side of a centred subject a pan or tilt starts and ends (0..1 of the frame). */
const PAN_SPAN = 0.25;

export function cameraPresetFor(angle: string | undefined): CameraPreset {
  return (CAMERA_PRESETS as readonly string[]).includes(angle ?? '')
    ? (angle as CameraPreset)
    : 'wide_shot';
}

/**
 * Where the subject stands, from words such as "detective_center", "villain_left" or
 * "cat_top_right"; several positions are averaged. The default is a little above the centre,
 * where faces usually are.
 */
export function subjectFocus(positions: readonly string[] | undefined): FramePoint {
  const points = (positions ?? []).map((p) => {
    const words = p.toLowerCase().split(/[^a-z]+/);
    const has = (...w: string[]) => w.some((x) => words.includes(x));
    const x = has('left') ? 0.3 : has('right') ? 0.7 : 0.5;
    const y = has('top', 'upper', 'background')
      ? 0.35
      : has('bottom', 'lower', 'foreground')
        ? 0.55
        : 0.42;
    return { x, y };
  });
  if (points.length === 0) return { x: 0.5, y: 0.42 };
  return {
    x: points.reduce((s, p) => s + p.x, 0) / points.length,
    y: points.reduce((s, p) => s + p.y, 0) / points.length,
  };
}

/**
 * The camera at `u` (0 = first frame, 1 = last) of a clip `seconds` long: zoom (1 = the whole
 * source) and where it looks. Moves run over the whole clip, across the storyboard's shots.
 */
function shotAt(
  preset: CameraPreset,
  u: number,
  seconds: number,
  subject: FramePoint,
  centred: boolean,
): Shot {
  const e = smooth(u);
  switch (preset) {
    case 'wide_shot':
      // A slow push keeps a still frame alive.
      return { zoom: lerp(1, 1.06, u), x: centred ? subject.x : 0.5, y: centred ? subject.y : 0.5 };
    case 'medium_shot':
      return { zoom: lerp(1.5, 1.56, u), x: subject.x, y: lerp(0.5, subject.y, 0.6) };
    case 'close_up':
      return { zoom: lerp(2.3, 2.4, u), x: subject.x, y: subject.y };
    case 'pan_left':
      // Starts on the right of the scene and turns left; the clamp keeps the view inside.
      // Centred on the subject, the pan sweeps across it instead of across the whole frame.
      return centred
        ? { zoom: 1.35, x: lerp(subject.x + PAN_SPAN, subject.x - PAN_SPAN, e), y: subject.y }
        : { zoom: 1.35, x: lerp(1, 0, e), y: 0.5 };
    case 'pan_right':
      return centred
        ? { zoom: 1.35, x: lerp(subject.x - PAN_SPAN, subject.x + PAN_SPAN, e), y: subject.y }
        : { zoom: 1.35, x: lerp(0, 1, e), y: 0.5 };
    case 'tilt_up':
      return centred
        ? { zoom: 1.35, x: subject.x, y: lerp(subject.y + PAN_SPAN, subject.y - PAN_SPAN, e) }
        : { zoom: 1.35, x: 0.5, y: lerp(1, 0, e) };
    case 'dolly_in':
      return { zoom: lerp(1, 1.8, e), x: lerp(0.5, subject.x, e), y: lerp(0.5, subject.y, e) };
    case 'dolly_out':
      return { zoom: lerp(1.8, 1, e), x: lerp(subject.x, 0.5, e), y: lerp(subject.y, 0.5, e) };
    case 'tracking_shot': {
      // Follows the subject across the frame, with the sway of a hand-held rig.
      const t = u * seconds;
      return {
        zoom: 1.5,
        x: lerp(subject.x - 0.22, subject.x + 0.22, u) + 0.004 * Math.sin(2 * Math.PI * 0.7 * t),
        y: lerp(0.5, subject.y, 0.5) + 0.006 * Math.sin(2 * Math.PI * 1.9 * t),
      };
    }
  }
}

/**
 * The crop box of `preset` at `u` in 0..1; always inside the source. `centred` (framing on
 * faces) also centres the moves that otherwise keep to the frame's middle (wide shot, pans,
 * tilt) on the subject.
 */
export function cameraBox(
  preset: CameraPreset,
  u: number,
  seconds: number,
  subject: FramePoint,
  centred = false,
): CameraBox {
  const shot = shotAt(preset, u, seconds, subject, centred);
  const half = 0.5 / Math.max(1, shot.zoom);
  const cx = Math.min(1 - half, Math.max(half, shot.x));
  const cy = Math.min(1 - half, Math.max(half, shot.y));
  return [cy - half, cx - half, cy + half, cx + half];
}

/** The largest zoom a preset reaches: how much detail the source should keep. */
export function maxZoom(preset: CameraPreset): number {
  let max = 1;
  for (let i = 0; i <= 20; i++) {
    const [y1, , y2] = cameraBox(preset, i / 20, 10, { x: 0.5, y: 0.5 });
    max = Math.max(max, 1 / (y2 - y1));
  }
  return max;
}
