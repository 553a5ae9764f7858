import type { InputFetcher } from '../../inputs/input-fetcher';
import { decodeCover, fetchImages, type ImageInput } from '../../media/video/image.inputs';

export interface StoryboardFetch {
  fetcher: InputFetcher;
  urls: readonly string[];
  projectId: string;
  signal: AbortSignal;
  /** Called after each frame arrived and was checked, with the number done so far. */
  onFetched?: (done: number) => Promise<void>;
}

/**
 * The storyboard's frames: fetched and checked up front (so a bad URL fails before any frame is
 * rendered), decoded one at a time as the camera reaches them, to the source size the camera
 * crops from. Only the encoded bytes are held for all frames.
 */
export class Storyboard {
  private readonly decoded = new Map<number, Promise<Buffer>>();
  private size?: { width: number; height: number };

  private constructor(private readonly frames: ImageInput[]) {}

  static async fetch(opts: StoryboardFetch): Promise<Storyboard> {
    const frames = await fetchImages(
      opts.fetcher,
      opts.urls.map((url, i) => ({ field: `task_data.storyboard_images[${i}]`, url })),
      { projectId: opts.projectId, signal: opts.signal, onFetched: opts.onFetched },
    );
    return new Storyboard(frames);
  }

  get length(): number {
    return this.frames.length;
  }

  /** The fetched frames, in storyboard order (encoded bytes and upright size). */
  get inputs(): readonly ImageInput[] {
    return this.frames;
  }

  /** Sets the size every frame is decoded to (cover-fitted, centred). */
  useSourceSize(width: number, height: number): void {
    this.size = { width, height };
  }

  /** Frame `i` as rgb24 bytes at the source size; decoded once, in sharp's thread pool. */
  decode(i: number): Promise<Buffer> {
    let pending = this.decoded.get(i);
    if (!pending) {
      const size = this.size;
      if (!size) throw new Error('useSourceSize before decode');
      pending = decodeCover(this.frames[i], size.width, size.height).then((d) => d.data);
      // A prefetch nobody awaits yet must not become an unhandled rejection.
      pending.catch(() => undefined);
      this.decoded.set(i, pending);
    }
    return pending;
  }

  /** Forgets decoded frames before `i` (the camera has moved past them). */
  forgetBefore(i: number): void {
    for (const k of this.decoded.keys()) if (k < i) this.decoded.delete(k);
  }
}
