import { Worker } from 'node:worker_threads';

/**
 * The camera view of a frame as a WebAssembly SIMD kernel: a separable bilinear resample of the
 * source window fused with the crossfade and the screen light, so each output byte is computed
 * once, in 16-bit fixed point, from the graded source bytes. The module (under 1 KB) is assembled
 * below, opcode by opcode, and runs in a worker thread over a shared memory (`ViewThread`), which
 * is undefined where WebAssembly SIMD is not available. The plain loops of `renderFrame`
 * (camera.view.ts) give the same bytes. About 5 ms per 1080p frame on an idle core (9 ms with a
 * crossfade), where libvips' crop-and-resize plus the light took ~27 ms of CPU.
 *
 * - `hrow`: one source row resampled horizontally, 16 output bytes per step. A table gives, per
 *   step, the first source byte it reads, two 16-lane byte indices into the 32 source bytes from
 *   there (left and right tap, `i8x16.swizzle` of both halves) and the right tap's Q15 weights:
 *   `h = (a << 7) + q15((b − a) << 7, w)`, pixels × 128 as i16.
 * - `vrow`: one output row from two such rows: `v = h₀ + q15(h₁ − h₀, w)`, times the light gains
 *   (`q15(v, g)` = `(v · g + 2¹⁴) >> 15`), narrowed to bytes with saturation.
 * - `vfade`: the same for two shots, crossfaded before the light: `x = v + q15(v′ − v, w′)`.
 */

// Instruction bytes (WebAssembly core spec 2.0, SIMD opcodes after the 0xfd prefix as LEB128).
const BLOCK = [0x02, 0x40];
const LOOP = [0x03, 0x40];
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const I32_LOAD = (offset: number) => [0x28, 2, ...uleb(offset)];
const I32_CONST = 0x41;
const I32_GE_U = 0x4f;
const I32_ADD = 0x6a;
const I32 = 0x7f;
const V128 = 0x7b;
const simd = (op: number) => (op < 0x80 ? [0xfd, op] : [0xfd, (op & 0x7f) | 0x80, op >> 7]);
const V128_LOAD = (offset: number) => [...simd(0x00), 0, ...uleb(offset)];
const V128_STORE = (offset: number) => [...simd(0x0b), 0, ...uleb(offset)];
const I8X16_SWIZZLE = simd(0x0e);
const I8X16_SPLAT = simd(0x0f);
const I16X8_SPLAT = simd(0x10);
const V128_OR = simd(0x50);
const I8X16_NARROW_I16X8_U = simd(0x66);
const I8X16_SUB = simd(0x71);
const I16X8_Q15MULR_SAT_S = simd(0x82);
const I16X8_EXTEND_LOW_I8X16_U = simd(0x89);
const I16X8_EXTEND_HIGH_I8X16_U = simd(0x8a);
const I16X8_SHL = simd(0x8b);
const I16X8_ADD = simd(0x8e);
const I16X8_SUB = simd(0x91);

const get = (local: number) => [LOCAL_GET, local];
const set = (local: number) => [LOCAL_SET, local];
const i32 = (value: number) => [I32_CONST, ...sleb(value)];
/** `local += step` */
const advance = (local: number, step: number) => [
  ...get(local),
  ...i32(step),
  I32_ADD,
  ...set(local),
];
/** `while (local < end) { body }` (unsigned compare). */
const loopUntil = (local: number, end: number, body: number[]) => [
  ...BLOCK,
  ...LOOP,
  ...get(local),
  ...get(end),
  I32_GE_U,
  BR_IF,
  1,
  ...body,
  BR,
  0,
  END,
  END,
];
/** Local declarations: `[count, type]` groups. */
const locals = (...groups: [number, number][]) => [groups.length, ...groups.flat()];

/** Bytes per step in the horizontal table: 2 × 16 indices, 2 × 8 weights, the source offset. */
export const HROW_STEP_BYTES = 80;

// hrow(src, table, tableEnd, dst): params 0..3; locals 4 base (i32), 5 L, 6 H, 7 A, 8 B, 9 K16.
const [H_SRC, H_T, H_END, H_DST, H_BASE, H_L, H_H, H_A, H_B, H_K16] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
];
/** Gathers 16 bytes from L‖H by the 16 indices at `table + offset` (indices ≥ 32 give 0). */
const gather = (offset: number) => [
  ...get(H_L),
  ...get(H_T),
  ...V128_LOAD(offset),
  ...I8X16_SWIZZLE,
  ...get(H_H),
  ...get(H_T),
  ...V128_LOAD(offset),
  ...get(H_K16),
  ...I8X16_SUB,
  ...I8X16_SWIZZLE,
  ...V128_OR,
];
/** One i16x8 half: `(a << 7) + q15((b − a) << 7, w)`. */
const hHalf = (extend: number[], weightOffset: number) => [
  ...get(H_A),
  ...extend,
  ...i32(7),
  ...I16X8_SHL,
  ...get(H_B),
  ...extend,
  ...get(H_A),
  ...extend,
  ...I16X8_SUB,
  ...i32(7),
  ...I16X8_SHL,
  ...get(H_T),
  ...V128_LOAD(weightOffset),
  ...I16X8_Q15MULR_SAT_S,
  ...I16X8_ADD,
];
const HROW_BODY = [
  ...locals([1, I32], [5, V128]),
  ...i32(16),
  ...I8X16_SPLAT,
  ...set(H_K16),
  ...loopUntil(H_T, H_END, [
    // base = src + table.offset; L, H = the 32 source bytes from there
    ...get(H_SRC),
    ...get(H_T),
    ...I32_LOAD(64),
    I32_ADD,
    LOCAL_TEE,
    H_BASE,
    ...V128_LOAD(0),
    ...set(H_L),
    ...get(H_BASE),
    ...V128_LOAD(16),
    ...set(H_H),
    ...gather(0),
    ...set(H_A),
    ...gather(16),
    ...set(H_B),
    ...get(H_DST),
    ...hHalf(I16X8_EXTEND_LOW_I8X16_U, 32),
    ...V128_STORE(0),
    ...get(H_DST),
    ...hHalf(I16X8_EXTEND_HIGH_I8X16_U, 48),
    ...V128_STORE(16),
    ...advance(H_T, HROW_STEP_BYTES),
    ...advance(H_DST, 32),
  ]),
  END,
];

// vrow(h0, h1, weight, gains, dst, dstEnd): params 0..5; locals 6 o (i32), 7 W, 8 X.
const [V_H0, V_H1, V_W, V_G, V_DST, V_END, V_O, V_WV, V_X] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
/** `base[o + offset]` as v128. */
const at = (base: number, o: number, offset: number) => [
  ...get(base),
  ...get(o),
  I32_ADD,
  ...V128_LOAD(offset),
];
/** `h₀ + q15(h₁ − h₀, w)` for the i16x8 at `offset`. */
const vMix = (h0: number, h1: number, o: number, w: number, x: number, offset: number) => [
  ...at(h0, o, offset),
  LOCAL_TEE,
  x,
  ...at(h1, o, offset),
  ...get(x),
  ...I16X8_SUB,
  ...get(w),
  ...I16X8_Q15MULR_SAT_S,
  ...I16X8_ADD,
];
const lit = (gains: number, o: number, offset: number) => [
  ...at(gains, o, offset),
  ...I16X8_Q15MULR_SAT_S,
];
const VROW_BODY = [
  ...locals([1, I32], [2, V128]),
  ...get(V_W),
  ...I16X8_SPLAT,
  ...set(V_WV),
  ...loopUntil(V_DST, V_END, [
    ...get(V_DST),
    ...vMix(V_H0, V_H1, V_O, V_WV, V_X, 0),
    ...lit(V_G, V_O, 0),
    ...vMix(V_H0, V_H1, V_O, V_WV, V_X, 16),
    ...lit(V_G, V_O, 16),
    ...I8X16_NARROW_I16X8_U,
    ...V128_STORE(0),
    ...advance(V_O, 32),
    ...advance(V_DST, 16),
  ]),
  END,
];

// vfade(h0, h1, k0, k1, weight, fade, gains, dst, dstEnd): params 0..8; locals 9 o, 10 W, 11 F,
// 12 X, 13 V.
const [F_H0, F_H1, F_K0, F_K1, F_W, F_F, F_G, F_DST, F_END, F_O, F_WV, F_FV, F_X, F_V] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
];
/** `v + q15(v′ − v, fade)` times the gains, for the i16x8 at `offset`. */
const fHalf = (offset: number) => [
  ...vMix(F_H0, F_H1, F_O, F_WV, F_X, offset),
  LOCAL_TEE,
  F_V,
  ...vMix(F_K0, F_K1, F_O, F_WV, F_X, offset),
  ...get(F_V),
  ...I16X8_SUB,
  ...get(F_FV),
  ...I16X8_Q15MULR_SAT_S,
  ...I16X8_ADD,
  ...lit(F_G, F_O, offset),
];
const VFADE_BODY = [
  ...locals([1, I32], [4, V128]),
  ...get(F_W),
  ...I16X8_SPLAT,
  ...set(F_WV),
  ...get(F_F),
  ...I16X8_SPLAT,
  ...set(F_FV),
  ...loopUntil(F_DST, F_END, [
    ...get(F_DST),
    ...fHalf(0),
    ...fHalf(16),
    ...I8X16_NARROW_I16X8_U,
    ...V128_STORE(0),
    ...advance(F_O, 32),
    ...advance(F_DST, 16),
  ]),
  END,
];

/** 64 KiB pages the kernel's memory may have (4 GiB, all wasm32 can address). */
const MAX_PAGES = 65_536;

const name = (s: string) => [s.length, ...Buffer.from(s, 'ascii')];
const section = (id: number, content: number[]) => [id, ...uleb(content.length), ...content];
const funcType = (params: number) => [0x60, params, ...new Array<number>(params).fill(I32), 0];
const code = (body: number[]) => [...uleb(body.length), ...body];

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  do {
    const byte = v & 0x7f;
    v = Math.floor(v / 128);
    out.push(v > 0 ? byte | 0x80 : byte);
  } while (v > 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

/**
 * The module: imports `env.mem`, exports `hrow(src, table, tableEnd, dst)`,
 * `vrow(h0, h1, weight, gains, dst, dstEnd)` and
 * `vfade(h0, h1, k0, k1, weight, fade, gains, dst, dstEnd)`.
 */
export const VIEW_KERNEL_WASM = Uint8Array.from([
  ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
  ...section(1, [3, ...funcType(4), ...funcType(6), ...funcType(9)]),
  // A shared memory (limits flag 3: shared, with a maximum), so a worker thread can render.
  ...section(2, [1, ...name('env'), ...name('mem'), 0x02, 0x03, 1, ...uleb(MAX_PAGES)]),
  ...section(3, [3, 0, 1, 2]),
  ...section(7, [3, ...name('hrow'), 0, 0, ...name('vrow'), 0, 1, ...name('vfade'), 0, 2]),
  ...section(10, [3, ...code(HROW_BODY), ...code(VROW_BODY), ...code(VFADE_BODY)]),
]);

/** The part of the WebAssembly JS API used here (our TypeScript libs do not declare it). */
interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Memory: new (descriptor: { initial: number; maximum: number; shared: true }) => WasmMemory;
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

let compiled: object | null | undefined;

function viewModule(): object | undefined {
  if (compiled === undefined) {
    try {
      compiled =
        wasm?.validate(VIEW_KERNEL_WASM) === true ? new wasm.Module(VIEW_KERNEL_WASM) : null;
    } catch {
      compiled = null;
    }
  }
  return compiled ?? undefined;
}

const PAGE = 65_536;

/** What the thread renders: one output frame, everything addressed in the shared memory. */
export interface FrameJob {
  /** First byte of the shot's source image and of the incoming one's (−1: no crossfade). */
  a: number;
  b: number;
  /** The crossfade weight, Q15. */
  fade: number;
  /** This frame's horizontal table and its end. */
  table: number;
  tableEnd: number;
  /** Four resampled rows, `rowStride` bytes apart (the thread's own scratch). */
  rows: number;
  rowStride: number;
  srcRowBytes: number;
  /** Per output row: the two source rows and the second one's weight (Q15). */
  ya: Int32Array;
  yb: Int32Array;
  wy: Uint16Array;
  gains: number;
  rowBytes: number;
  /** `rowBytes` rounded up to 16: what the kernel writes per row. */
  span: number;
  out: number;
  /** `span` bytes the last row is written to when `span > rowBytes` (then copied). */
  lastRow: number;
}

/**
 * The render thread's code (plain JS: it must run under ts-node, jest and the built app alike).
 * Per frame it resamples each source row the frame needs once (two rows per shot, by parity),
 * then makes every output row from two of them.
 */
const THREAD_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { memory } = workerData;
const k = new WebAssembly.Instance(workerData.module, { env: { mem: memory } }).exports;
parentPort.on('message', ({ id, job }) => {
  try {
    const { a, b, fade, table, tableEnd, rows, rowStride, srcRowBytes, ya, yb, wy } = job;
    const { gains, rowBytes, span, out, lastRow } = job;
    const cached = [-1, -1, -1, -1];
    const row = (src, first, sy) => {
      const r = first + (sy & 1);
      const at = rows + r * rowStride;
      if (cached[r] !== sy) {
        k.hrow(src + sy * srcRowBytes, table, tableEnd, at);
        cached[r] = sy;
      }
      return at;
    };
    const height = ya.length;
    for (let y = 0; y < height; y++) {
      const last = y === height - 1 && span > rowBytes;
      const dst = last ? lastRow : out + y * rowBytes;
      const g = gains + 2 * y * rowBytes;
      const h0 = row(a, 0, ya[y]);
      const h1 = row(a, 0, yb[y]);
      if (b < 0) k.vrow(h0, h1, wy[y], g, dst, dst + span);
      else k.vfade(h0, h1, row(b, 2, ya[y]), row(b, 2, yb[y]), wy[y], fade, g, dst, dst + span);
      if (last) new Uint8Array(memory.buffer).copyWithin(out + y * rowBytes, dst, dst + rowBytes);
    }
    parentPort.postMessage({ id });
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
parentPort.postMessage({ ready: true });
`;

/**
 * The kernel in a worker thread over a shared memory of `bytes`, so frames render while the
 * event loop streams the previous ones into ffmpeg. Jobs run in order. Undefined without
 * WebAssembly SIMD (or shared memory).
 */
export class ViewThread {
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  private failure?: Error;
  private last: Promise<void> = Promise.resolve();

  private constructor(
    readonly memory: WasmMemory,
    private readonly worker: Worker,
  ) {
    worker.on('message', (reply: { id?: number; error?: string }) => {
      if (reply.id === undefined) return;
      const waiter = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (reply.error === undefined) waiter?.resolve();
      else waiter?.reject(new Error(`camera kernel failed: ${reply.error}`));
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      for (const waiter of this.pending.values()) waiter.reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`camera kernel thread exited (${code})`)));
  }

  static async start(bytes: number): Promise<ViewThread | undefined> {
    const module = viewModule();
    if (!module || !wasm) return undefined;
    const pages = Math.ceil(bytes / PAGE);
    if (pages > MAX_PAGES) throw new RangeError('camera kernel memory above 4 GiB');
    let memory: WasmMemory;
    try {
      memory = new wasm.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
    } catch {
      // No shared memory here (SharedArrayBuffer disabled): the plain loops it is.
      return undefined;
    }
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { module, memory },
      // Plain JS needing nothing but node:worker_threads: no preloads (ts-node costs ~0.2 s).
      execArgv: [],
    });
    // A finished render must not keep the process alive.
    worker.unref();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      worker.once('error', onError);
      worker.once('message', () => {
        worker.off('error', onError);
        resolve();
      });
    });
    return new ViewThread(memory, worker);
  }

  render(job: FrameJob): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, job });
    });
    this.last = done.catch(() => undefined);
    return done;
  }

  /** Resolves once every job sent so far is done (or failed). */
  idle(): Promise<void> {
    return this.last;
  }

  async close(): Promise<void> {
    this.failure ??= new Error('camera kernel closed');
    await this.worker.terminate();
  }
}
