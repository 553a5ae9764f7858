import { Injectable, Logger } from '@nestjs/common';
import type * as TfCore from '@tensorflow/tfjs-core';
import {
  esrganModelName,
  GpuService,
  ModelRepository,
  type EsrganSize,
  type LoadedModel,
} from '@app/gpu';
import type { UpscaleQuality, UpscaleScale } from '@app/tasks';
import { featherWeights, tileStarts } from './upscale.tiles';

/** The ESRGAN network of each quality level. */
export const UPSCALE_NETWORKS: Record<UpscaleQuality, EsrganSize> = {
  fast: 'slim',
  balanced: 'medium',
  best: 'thick',
};

/** The model-repository name of the network a quality and scale use. */
export function upscaleModelName(quality: UpscaleQuality, scale: UpscaleScale): string {
  return esrganModelName(UPSCALE_NETWORKS[quality], scale);
}

/**
 * Tile side (input pixels) per network and scale: one tile takes about half a second at most on
 * the wasm backend (one thread, an idle machine), so a cancel or the job's lock renewal waits no
 * longer than that. Measured per tile: slim 128² 0.42 s; medium ×4 96² 0.55 s, medium ×2/×3 are
 * heavier networks (64² 0.35–0.5 s); thick 24² 0.4–0.6 s. The cost per pixel is flat above ~32²,
 * so smaller tiles cost only their overlap.
 */
const TILE_SIDE: Record<EsrganSize, Record<UpscaleScale, number>> = {
  slim: { 2: 128, 3: 128, 4: 128 },
  medium: { 2: 64, 3: 64, 4: 96 },
  thick: { 2: 24, 3: 24, 4: 24 },
};

/**
 * Overlap of neighbouring tiles, input pixels: a quarter of it is dead margin on each side, the
 * middle half is feathered. With 8, tiled output is within a grey level or two of one pass
 * (mean difference ~0.05 at ×4, ~0.1 at ×2); thick's tiles are small, and 4 (max 1 grey level
 * at ×4) keeps their overhead at 1.44× instead of 2×.
 */
const TILE_OVERLAP: Record<EsrganSize, number> = { slim: 8, medium: 8, thick: 4 };

export interface UpscaleRequest {
  /** RGB, 8 bits per channel, row-major: width × height × 3 bytes. */
  readonly pixels: Uint8Array;
  readonly width: number;
  readonly height: number;
  readonly scale: UpscaleScale;
  readonly quality: UpscaleQuality;
  /** Checked between tiles: the abort reason is thrown as is. */
  readonly signal?: AbortSignal;
  /** Called after each tile (progress); its rejection stops the upscale. */
  readonly onTile?: (done: number, total: number) => Promise<void> | void;
  /** Tile side and overlap (input pixels) instead of the network's defaults (tests, benches). */
  readonly tileSide?: number;
  readonly overlap?: number;
  /** Names the work in the tensor-leak warning (e.g. the task id). */
  readonly label?: string;
}

export interface UpscaledImage {
  /** RGB, (width × scale) × (height × scale) × 3 bytes. */
  readonly pixels: Buffer;
  readonly width: number;
  readonly height: number;
  readonly model: string;
  readonly version: string;
  readonly backend: string;
  readonly tiles: number;
  /** Tile side in input pixels (the image's own size when it fits in one tile). */
  readonly tileSize: number;
  readonly overlap: number;
  readonly ms: number;
}

/**
 * Super-resolution by ESRGAN (the model repository's esrgan-{slim,medium,thick}-x{2,3,4}) in
 * overlapping tiles, so that any image works in bounded backend memory: one tile's tensors at a
 * time, and a float accumulator of one row of tiles across the output. Overlaps are blended by
 * linear feathering (upscale.tiles.ts). Yields to the event loop between tiles and checks the
 * signal there: a cancel stops it within one tile's time. Every tensor is disposed per tile.
 */
@Injectable()
export class ImageUpscaler {
  private readonly logger = new Logger(ImageUpscaler.name);

  constructor(
    private readonly gpu: GpuService,
    private readonly models: ModelRepository,
  ) {}

  /** The models the upscaler runs: what a processor declares to preload. */
  static modelNames(qualities: readonly UpscaleQuality[]): string[] {
    return qualities.flatMap((q) => ([2, 3, 4] as const).map((s) => upscaleModelName(q, s)));
  }

  async upscale(req: UpscaleRequest): Promise<UpscaledImage> {
    const { width, height, scale, quality, signal } = req;
    if (req.pixels.length !== width * height * 3) {
      throw new RangeError(`expected ${width}x${height} RGB (${width * height * 3} bytes)`);
    }
    const size = UPSCALE_NETWORKS[quality];
    const name = upscaleModelName(quality, scale);
    signal?.throwIfAborted();
    await this.gpu.init();
    const started = performance.now();
    return this.models.use(name, (model) =>
      this.gpu.scoped(`upscale ${name} ${req.label ?? ''}`.trim(), async () => {
        const side = req.tileSide ?? TILE_SIDE[size][scale];
        const overlap = Math.min(req.overlap ?? TILE_OVERLAP[size], side - 1);
        const tileW = Math.min(side, width);
        const tileH = Math.min(side, height);
        const xs = tileStarts(width, tileW, overlap);
        const ys = tileStarts(height, tileH, overlap);
        const wx = xs.map((_, i) => featherWeights(xs, i, tileW, scale));
        const wy = ys.map((_, j) => featherWeights(ys, j, tileH, scale));
        const total = xs.length * ys.length;
        const band = new BandAccumulator(width * scale, height * scale, tileH * scale);
        const run = new TileRunner(this.gpu.tf, model, req.pixels, width);
        let done = 0;
        for (let j = 0; j < ys.length; j++) {
          band.startRow(ys[j] * scale);
          for (let i = 0; i < xs.length; i++) {
            signal?.throwIfAborted();
            const out = await run.tile(xs[i], ys[j], tileW, tileH);
            band.add(out, xs[i] * scale, ys[j] * scale, tileW * scale, tileH * scale, wx[i], wy[j]);
            done += 1;
            await req.onTile?.(done, total);
            // Let timers and I/O (lock renewal, cancel messages) run between tiles.
            await new Promise<void>((resolve) => setImmediate(resolve));
          }
          band.flush(j + 1 < ys.length ? ys[j + 1] * scale : height * scale);
        }
        signal?.throwIfAborted();
        const ms = Math.round(performance.now() - started);
        this.logger.debug(
          `${name}: ${width}x${height} → ${width * scale}x${height * scale} in ${total} tile(s) ` +
            `of ${tileW}x${tileH} (overlap ${overlap}) in ${ms} ms on ${this.gpu.backendName}`,
        );
        return {
          pixels: band.output,
          width: width * scale,
          height: height * scale,
          model: name,
          version: model.version,
          backend: this.gpu.backendName,
          tiles: total,
          tileSize: Math.max(tileW, tileH),
          overlap,
          ms,
        };
      }),
    );
  }
}

/** Runs the network on one tile of the input: float pixels in the model's range, in and out. */
class TileRunner {
  private readonly inMax: number;
  private readonly outToByte: number;

  constructor(
    private readonly tf: typeof TfCore,
    private readonly model: LoadedModel,
    private readonly pixels: Uint8Array,
    private readonly width: number,
  ) {
    // slim/medium work in 0–255, thick in 0–1 (config.json inputs[0].range).
    this.inMax = model.config.inputs[0]?.range?.[1] ?? 255;
    this.outToByte = 255 / (model.config.outputs[0]?.range?.[1] ?? this.inMax);
  }

  /** The tile's output, (h × scale) × (w × scale) × 3 values scaled to 0–255 (unclamped). */
  async tile(x0: number, y0: number, w: number, h: number): Promise<Float32Array> {
    const input = new Float32Array(w * h * 3);
    const k = this.inMax / 255;
    for (let y = 0; y < h; y++) {
      const from = ((y0 + y) * this.width + x0) * 3;
      const to = y * w * 3;
      for (let i = 0; i < w * 3; i++) input[to + i] = this.pixels[from + i] * k;
    }
    const { tf, model } = this;
    const layers = model.layers();
    const x = tf.tensor4d(input, [1, h, w, 3]);
    let y: TfCore.Tensor | undefined;
    try {
      const data = await model.infer(async () => {
        y = tf.tidy(() => layers.predict(x) as TfCore.Tensor);
        return (await y.data()) as Float32Array;
      });
      if (this.outToByte !== 1) for (let i = 0; i < data.length; i++) data[i] *= this.outToByte;
      return data;
    } finally {
      x.dispose();
      y?.dispose();
    }
  }
}

/**
 * Weighted sums of one row of tiles across the whole output width (float RGB + weight), and the
 * 8-bit output. Rows above the next tile row's top are final and written out; the rows the next
 * tile row overlaps move to the top of the band.
 */
class BandAccumulator {
  readonly output: Buffer;
  private readonly sum: Float32Array;
  private readonly weight: Float32Array;
  /** Output row of the band's first row. */
  private top = 0;

  constructor(
    private readonly width: number,
    height: number,
    private readonly rows: number,
  ) {
    this.output = Buffer.alloc(width * height * 3);
    this.sum = new Float32Array(width * rows * 3);
    this.weight = new Float32Array(width * rows);
  }

  /** Moves the band down to start at output row `top` (rows above it were flushed). */
  startRow(top: number): void {
    const shift = top - this.top;
    if (shift > 0) {
      const keep = Math.max(0, this.rows - shift);
      this.sum.copyWithin(0, shift * this.width * 3, this.rows * this.width * 3);
      this.sum.fill(0, keep * this.width * 3);
      this.weight.copyWithin(0, shift * this.width, this.rows * this.width);
      this.weight.fill(0, keep * this.width);
    }
    this.top = top;
  }

  add(
    tile: Float32Array,
    ox: number,
    oy: number,
    w: number,
    h: number,
    wx: Float32Array,
    wy: Float32Array,
  ): void {
    const { sum, weight, width } = this;
    for (let y = 0; y < h; y++) {
      const row = oy - this.top + y;
      const fy = wy[y];
      let s = (row * width + ox) * 3;
      let wi = row * width + ox;
      let t = y * w * 3;
      for (let x = 0; x < w; x++) {
        // A floor keeps every pixel's weight positive, whatever the layout.
        const f = Math.max(fy * wx[x], 1e-6);
        sum[s++] += f * tile[t++];
        sum[s++] += f * tile[t++];
        sum[s++] += f * tile[t++];
        weight[wi++] += f;
      }
    }
  }

  /** Writes output rows from the band's top up to `end` (exclusive): they are final. */
  flush(end: number): void {
    const { sum, weight, width, output } = this;
    const rows = end - this.top;
    let o = this.top * width * 3;
    for (let p = 0; p < rows * width; p++) {
      const inv = 1 / weight[p];
      for (let c = 0; c < 3; c++) {
        const v = Math.round(sum[p * 3 + c] * inv);
        output[o++] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
}
