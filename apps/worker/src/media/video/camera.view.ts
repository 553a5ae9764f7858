import { framesPerBatch } from '../frame-batches';
import type { CameraBox } from './camera.path';
import { type FrameJob, HROW_STEP_BYTES, ViewThread } from './view.kernel';

/** Interleaved rgb24 pixels, row-major. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

/**
 * Output pixels per batch of camera frames: six 1080p frames (~37 MB). The renderer holds two
 * batches: one rendered by its thread while the event loop streams the other into ffmpeg; a
 * batch takes ~0.1 s, so a cancel is seen quickly.
 */
const BATCH_PIXELS = 6 * 1920 * 1080;

export function cameraFramesPerBatch(width: number, height: number): number {
  return framesPerBatch(width, height, BATCH_PIXELS);
}

/** A crossfade weight (0..1) in Q15, as the kernel and `renderFrame` use it. */
export function q15Weight(weight: number): number {
  return Math.min(32_767, Math.max(0, Math.round(weight * 32_768)));
}

/**
 * Where each output pixel of one axis samples the source: the two taps (source pixel indices,
 * clamped to the image) and the second tap's weight in Q15. Output pixel `i`'s centre maps to
 * `from + (i + ½) · span / out − ½` in source pixels (centres at `k + ½`), so a window of the
 * output's own size at a whole-pixel position copies pixels exactly.
 */
export interface AxisSamples {
  a: Int32Array;
  b: Int32Array;
  w: Uint16Array;
}

export function axisSamples(from: number, span: number, size: number, out: number): AxisSamples {
  const a = new Int32Array(out);
  const b = new Int32Array(out);
  const w = new Uint16Array(out);
  const step = span / out;
  for (let i = 0; i < out; i++) {
    const s = from + (i + 0.5) * step - 0.5;
    let k = Math.floor(s);
    let f = s - k;
    if (k < 0) [k, f] = [0, 0];
    else if (k >= size - 1) [k, f] = [size - 1, 0];
    let q = Math.round(f * 32_768);
    if (q >= 32_768) [k, q] = [k + 1, 0];
    a[i] = k;
    b[i] = q > 0 ? k + 1 : k;
    w[i] = q;
  }
  return { a, b, w };
}

/** The samples of both axes for a camera box over a `sw`×`sh` source, at subpixel precision. */
export function cameraSamples(
  box: CameraBox,
  sw: number,
  sh: number,
  width: number,
  height: number,
): { x: AxisSamples; y: AxisSamples } {
  const [y1, x1, y2, x2] = box;
  return {
    x: axisSamples(x1 * sw, (x2 - x1) * sw, sw, width),
    y: axisSamples(y1 * sh, (y2 - y1) * sh, sh, height),
  };
}

/** `(a · b + 2¹⁴) >> 15`, as `i16x8.q15mulr_sat_s` (no operand here reaches its saturation). */
const q15 = (a: number, b: number) => (a * b + 16_384) >> 15;

/** Source row `sy` resampled along x into `out`: pixels × 128. */
function horizontalRow(image: RgbImage, sy: number, xs: AxisSamples, out: Int16Array): void {
  const d = image.data;
  const row = sy * image.width * 3;
  for (let x = 0, o = 0; x < xs.a.length; x++) {
    const pa = row + xs.a[x] * 3;
    const pb = row + xs.b[x] * 3;
    const w = xs.w[x];
    for (let c = 0; c < 3; c++, o++) {
      const va = d[pa + c];
      out[o] = (va << 7) + q15((d[pb + c] - va) << 7, w);
    }
  }
}

/** A shot's view in a crossfade: `weight` (0..1) of the frame is this image. */
export interface FadeIn {
  image: RgbImage;
  weight: number;
}

/**
 * One output frame into `target` at `offset` with plain loops: what the camera sees of `image`
 * through `box` (bilinear, subpixel; crossfaded into `next.image` by `next.weight` during a
 * transition), times the screen light, rounded and clipped to bytes. Integer arithmetic in the
 * steps of the SIMD kernel (view.kernel.ts): both give the same bytes on any machine.
 */
export function renderFrame(
  target: Uint8Array,
  offset: number,
  gains: Uint16Array,
  width: number,
  height: number,
  box: CameraBox,
  image: RgbImage,
  next?: FadeIn,
): void {
  const n = width * height * 3;
  if (gains.length < n || target.length < offset + n) throw new RangeError('frame size mismatch');
  const fading = next && next.weight > 0 ? next : undefined;
  checkSource(image);
  if (fading) checkSource(fading.image, image);
  const { x: xs, y: ys } = cameraSamples(box, image.width, image.height, width, height);
  const rowBytes = width * 3;
  // Horizontally resampled rows, cached by source row (consecutive output rows share them).
  const rows = (img: RgbImage) => {
    const cache = [0, 1].map(() => ({ sy: -1, data: new Int16Array(rowBytes) }));
    return (sy: number) => {
      const slot = cache[sy & 1];
      if (slot.sy !== sy) {
        horizontalRow(img, sy, xs, slot.data);
        slot.sy = sy;
      }
      return slot.data;
    };
  };
  const shot = rows(image);
  const incoming = fading ? rows(fading.image) : undefined;
  const fade = fading ? q15Weight(fading.weight) : 0;
  for (let y = 0; y < height; y++) {
    const wy = ys.w[y];
    const h0 = shot(ys.a[y]);
    const h1 = shot(ys.b[y]);
    const k0 = incoming?.(ys.a[y]);
    const k1 = incoming?.(ys.b[y]);
    const base = y * rowBytes;
    for (let i = 0; i < rowBytes; i++) {
      let v = h0[i] + q15(h1[i] - h0[i], wy);
      if (k0 && k1) {
        const u = k0[i] + q15(k1[i] - k0[i], wy);
        v += q15(u - v, fade);
      }
      const out = q15(v, gains[base + i]);
      target[offset + base + i] = out > 255 ? 255 : out < 0 ? 0 : out;
    }
  }
}

function checkSource(image: RgbImage, like?: RgbImage): void {
  if (image.width < 1 || image.height < 1 || image.data.length < image.width * image.height * 3) {
    throw new RangeError('source image size mismatch');
  }
  if (like && (like.width !== image.width || like.height !== image.height)) {
    throw new RangeError('crossfaded sources differ in size');
  }
}

/** Bytes a step of the horizontal kernel may read past its first source byte. */
const GATHER_SPAN = 32;

const align16 = (n: number) => Math.ceil(n / 16) * 16;

/** Where things are in the kernel's shared memory. */
interface Layout {
  frameBytes: number;
  /** 16-byte steps per output row. */
  steps: number;
  /** Two source image slots. */
  sources: [number, number];
  tables: number;
  tableBytes: number;
  rows: number;
  rowStride: number;
  lastRow: number;
  out: number;
  total: number;
}

function layout(
  width: number,
  height: number,
  source: { width: number; height: number },
  frames: number,
): Layout {
  const rowBytes = width * 3;
  const frameBytes = rowBytes * height;
  const steps = Math.ceil(rowBytes / 16);
  // The gains (read 16 past the end on the last row), then the rest.
  const gainBytes = align16(2 * frameBytes + 32);
  const slotBytes = align16(source.width * source.height * 3 + GATHER_SPAN);
  const tables = gainBytes + 2 * slotBytes;
  const tableBytes = steps * HROW_STEP_BYTES;
  const rows = tables + frames * tableBytes;
  const rowStride = steps * 32;
  const lastRow = rows + 4 * rowStride;
  const out = lastRow + steps * 16;
  return {
    frameBytes,
    steps,
    sources: [gainBytes, gainBytes + slotBytes],
    tables,
    tableBytes,
    rows,
    rowStride,
    lastRow,
    out,
    total: out + frames * frameBytes,
  };
}

/**
 * Renders camera frames of one output size and screen light into `frames` numbered output
 * slots: through the WebAssembly SIMD kernel (view.kernel.ts) in a worker thread, over a shared
 * memory the slots live in (so the event loop streams finished frames into ffmpeg meanwhile, no
 * copies), or with `renderFrame` where there is no WebAssembly SIMD or a frame's sampling is too
 * sparse for the kernel's 32-byte gathers (above ~1.7 source pixels per output pixel) — the same
 * bytes either way.
 *
 * Source images are copied into one of two slots when first shown (a shot and the incoming one
 * of a crossfade), so they must not change afterwards. `close` ends the thread.
 */
export class CameraRenderer {
  private readonly slots: (RgbImage | undefined)[] = [undefined, undefined];
  /** Renders are posted in call order (a source slot is only reloaded once the thread is idle). */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly gains: Uint16Array,
    readonly width: number,
    readonly height: number,
    readonly source: { width: number; height: number },
    readonly frames: number,
    private readonly at: Layout,
    private readonly thread: ViewThread | undefined,
    private readonly plain: Uint8Array | undefined,
  ) {}

  static async start(
    gains: Uint16Array,
    width: number,
    height: number,
    source: { width: number; height: number },
    frames: number,
  ): Promise<CameraRenderer> {
    const at = layout(width, height, source, frames);
    if (gains.length !== at.frameBytes) throw new RangeError('gains do not match the frame size');
    const thread = await ViewThread.start(at.total);
    if (thread) new Uint16Array(thread.memory.buffer, 0, gains.length).set(gains);
    const plain = thread ? undefined : new Uint8Array(frames * at.frameBytes);
    return new CameraRenderer(gains, width, height, source, frames, at, thread, plain);
  }

  get simd(): boolean {
    return this.thread !== undefined;
  }

  /** Output slots `first ..< first + count`, consecutive: rgb24 frames once rendered. */
  output(first: number, count: number): Uint8Array {
    if (first < 0 || count < 0 || first + count > this.frames) throw new RangeError('no such slot');
    const { frameBytes, out } = this.at;
    if (this.plain) return this.plain.subarray(first * frameBytes, (first + count) * frameBytes);
    return new Uint8Array(this.thread!.memory.buffer, out + first * frameBytes, count * frameBytes);
  }

  /**
   * Renders one frame (as `renderFrame` makes it) into output slot `frame`; resolves when it is
   * there. Renders run in call order; a slot must not be rendered again before it resolved.
   */
  render(frame: number, box: CameraBox, image: RgbImage, next?: FadeIn): Promise<void> {
    const { source } = this;
    const fading = next && next.weight > 0 ? next : undefined;
    for (const img of fading ? [image, fading.image] : [image]) {
      if (img.width !== source.width || img.height !== source.height) {
        return Promise.reject(
          new RangeError(`source ${img.width}x${img.height} is not the renderer's source size`),
        );
      }
    }
    const target = this.output(frame, 1);
    const posted = this.queue.then(() => this.post(frame, target, box, image, fading));
    this.queue = posted.catch(() => undefined);
    // The job's completion, not its posting, is what the caller waits for.
    return posted.then((p) => p.done);
  }

  async close(): Promise<void> {
    await this.thread?.close();
  }

  private async post(
    frame: number,
    target: Uint8Array,
    box: CameraBox,
    image: RgbImage,
    fading?: FadeIn,
  ): Promise<{ done: Promise<void> }> {
    const { width, height, source, at } = this;
    const thread = this.thread;
    const { x: xs, y: ys } = cameraSamples(box, source.width, source.height, width, height);
    const table = at.tables + frame * at.tableBytes;
    if (!thread || !this.writeTable(thread.memory.buffer, table, xs)) {
      renderFrame(target, 0, this.gains, width, height, box, image, fading);
      return { done: Promise.resolve() };
    }
    const a = await this.slotFor(thread, image, fading?.image);
    const b = fading ? await this.slotFor(thread, fading.image, image) : -1;
    const rowBytes = width * 3;
    const job: FrameJob = {
      a: at.sources[a],
      b: b < 0 ? -1 : at.sources[b],
      fade: fading ? q15Weight(fading.weight) : 0,
      table,
      tableEnd: table + at.tableBytes,
      rows: at.rows,
      rowStride: at.rowStride,
      srcRowBytes: source.width * 3,
      ya: ys.a,
      yb: ys.b,
      wy: ys.w,
      gains: 0,
      rowBytes,
      span: at.steps * 16,
      out: at.out + frame * at.frameBytes,
      lastRow: at.lastRow,
    };
    return { done: thread.render(job) };
  }

  /**
   * The horizontal table of a frame: per 16 output bytes the first source byte read, the indices
   * of both taps from there and the weights. False if a step would need more than 32 bytes.
   */
  private writeTable(memory: SharedArrayBuffer, at: number, xs: AxisSamples): boolean {
    const { steps, tableBytes } = this.at;
    const view = new DataView(memory, at, tableBytes);
    const n = this.width * 3;
    for (let s = 0; s < steps; s++) {
      const t = s * HROW_STEP_BYTES;
      const first = s * 16;
      const base = xs.a[(first / 3) | 0] * 3;
      for (let j = 0; j < 16; j++) {
        const o = first + j;
        let ia = 0;
        let ib = 0;
        let w = 0;
        if (o < n) {
          const p = (o / 3) | 0;
          const c = o - 3 * p;
          ia = xs.a[p] * 3 + c - base;
          ib = xs.b[p] * 3 + c - base;
          w = xs.w[p];
          if (ia < 0 || ib < 0 || ia >= GATHER_SPAN || ib >= GATHER_SPAN) return false;
        }
        view.setUint8(t + j, ia);
        view.setUint8(t + 16 + j, ib);
        view.setInt16(t + 32 + 2 * j, w, true);
      }
      view.setInt32(t + 64, base, true);
    }
    return true;
  }

  /**
   * The source slot holding `image`; copied in if needed (once the thread is idle), never into
   * the slot holding `keep`.
   */
  private async slotFor(thread: ViewThread, image: RgbImage, keep?: RgbImage): Promise<number> {
    let slot = this.slots.indexOf(image);
    if (slot >= 0) return slot;
    slot = keep !== undefined && this.slots[0] === keep ? 1 : 0;
    if (this.slots[slot] !== undefined && this.slots[1 - slot] === undefined) slot = 1 - slot;
    await thread.idle();
    this.slots[slot] = image;
    new Uint8Array(thread.memory.buffer).set(
      image.data.subarray(0, image.width * image.height * 3),
      this.at.sources[slot],
    );
    return slot;
  }
}
