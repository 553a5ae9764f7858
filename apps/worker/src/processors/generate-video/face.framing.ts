import {
  FaceAnalyzer,
  type FaceFinding,
  type FaceModelInfo,
} from '../../media/faces/face.analyzer';
import type { FramePoint } from '../../media/video/camera.path';
import type { ImageInput } from '../../media/video/image.inputs';

/** What face framing found in one storyboard frame. */
export interface FrameFaces {
  /** Faces the detector found in the frame as given. */
  faces: number;
  /** Where the camera centres (0..1 of the cover-cropped source); null: no face in view. */
  focus: FramePoint | null;
}

export interface FaceFraming {
  frames: FrameFaces[];
  model: FaceModelInfo;
}

/**
 * Runs face detection once per storyboard frame (once per URL) and gives each frame's focus:
 * the centre of its faces, each weighted by its area (the main character counts most), in the
 * coordinates of the source the camera crops (the frame cover-fitted to `source`). Faces the
 * cover crop cuts away do not count.
 */
export async function frameFaces(
  analyzer: FaceAnalyzer,
  frames: readonly ImageInput[],
  source: { width: number; height: number },
  opts: { signal: AbortSignal; onFrame?: (done: number) => Promise<void> },
): Promise<FaceFraming> {
  return analyzer.use(async (run, model) => {
    const byUrl = new Map<string, FrameFaces>();
    const result: FrameFaces[] = [];
    for (const frame of frames) {
      opts.signal.throwIfAborted();
      let found = byUrl.get(frame.url);
      if (!found) {
        const image = await FaceAnalyzer.decode(frame.data, frame.field, frame.url);
        const { faces } = await run(image);
        found = {
          faces: faces.length,
          focus: coverFocus(
            faces,
            { width: image.originalWidth, height: image.originalHeight },
            source,
          ),
        };
        byUrl.set(frame.url, found);
        await opts.onFrame?.(byUrl.size);
        // Let timers and I/O (lock renewal, cancel messages) run between frames.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      result.push(found);
    }
    return { frames: result, model };
  });
}

/**
 * The area-weighted centre of the faces, mapped from the image (`image` pixels) into the
 * cover-fitted, centre-cropped source; null when no face lies inside the crop.
 */
export function coverFocus(
  faces: readonly Pick<FaceFinding, 'box'>[],
  image: { width: number; height: number },
  source: { width: number; height: number },
): FramePoint | null {
  const scale = Math.max(source.width / image.width, source.height / image.height);
  const visibleW = source.width / scale;
  const visibleH = source.height / scale;
  const x0 = (image.width - visibleW) / 2;
  const y0 = (image.height - visibleH) / 2;
  let sum = 0;
  let x = 0;
  let y = 0;
  for (const { box } of faces) {
    const cx = (box.x + box.width / 2 - x0) / visibleW;
    const cy = (box.y + box.height / 2 - y0) / visibleH;
    if (cx < 0 || cx > 1 || cy < 0 || cy > 1) continue;
    const area = Math.max(1, box.width * box.height);
    sum += area;
    x += cx * area;
    y += cy * area;
  }
  if (sum === 0) return null;
  return { x: x / sum, y: y / sum };
}
