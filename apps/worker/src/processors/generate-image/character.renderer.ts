import type * as TfCore from '@tensorflow/tfjs-core';
import type { TensorScope } from '@app/gpu';
import { CppnNetwork, type CppnActivation } from './cppn.network';
import {
  EMBEDDING_DIMS,
  describeTraits,
  embedDescription,
  type DescriptionTraits,
  type Rgb,
} from './description.embedding';
import { buildFigure, figureFields, type FigureSpec } from './figure.silhouette';
import {
  applyLighting,
  lightingFor,
  lightingTensors,
  type LightingSpec,
  type LightingTensors,
} from './lighting.grade';
import {
  colourStats,
  extractPalette,
  mapToPalette,
  toHex,
  transferMap,
  type PaletteSource,
} from './palette.transfer';
import { SeededRandom } from './seeded.random';

type Tf = typeof TfCore;
type T2 = TfCore.Tensor2D;

export const MODEL_NAME = 'cppn-v1';

export interface RenderRequest {
  width: number;
  height: number;
  seed: number;
  description: string;
  pose?: string;
  lighting?: string;
}

/** Palette sources as RGBA thumbnails: the style guide (weighted more) and references. */
export interface PaletteInputs {
  styleGuide?: Uint8Array;
  references?: readonly Uint8Array[];
}

export type PaletteOrigin =
  'style_guide+reference_images' | 'style_guide' | 'reference_images' | 'generated';

/** How the image was made, for the task result's metadata. */
export interface RenderSummary {
  pose_preset: string;
  lighting_preset: string;
  palette_source: PaletteOrigin;
  palette: string[];
}

const HIDDEN = 32;
const ACTIVATIONS: readonly CppnActivation[] = ['psin', 'tanh', 'bump', 'tanh', 'psin', 'tanh'];
/** x, y, r, figure distance, figure mask. */
const INPUTS = 5;
/** Background RGB, outfit RGB, a detail channel (skin and hair shading). */
const OUTPUTS = 7;
/** Pixels per band: ~50-80 ms of work on wasm, so the event loop is never held long. */
const BAND_PIXELS = 32_768;
const PREVIEW_PIXELS = 96 * 96;

const SKIN_TONES: readonly Rgb[] = [
  [0.98, 0.86, 0.76],
  [0.95, 0.78, 0.66],
  [0.88, 0.68, 0.52],
  [0.76, 0.55, 0.4],
  [0.6, 0.42, 0.3],
  [0.44, 0.3, 0.21],
];
const HAIR_COLOURS: readonly Rgb[] = [
  [0.12, 0.08, 0.06],
  [0.28, 0.17, 0.1],
  [0.45, 0.28, 0.14],
  [0.62, 0.24, 0.1],
  [0.85, 0.72, 0.42],
  [0.06, 0.06, 0.07],
  [0.55, 0.55, 0.56],
];
const EYES: Rgb = [0.07, 0.06, 0.08];
const LUMA: Rgb = [0.299, 0.587, 0.114];

interface Grid {
  width: number;
  height: number;
  /** Image units per pixel (the height spans -1..1). */
  pixel: number;
}

/**
 * Renders a character design image with a CPPN on tfjs: a figure silhouette (pose preset) over a
 * background, both textured by the network, then palette transfer and a lighting grade. Built
 * once per task; `renderBand` draws rows on demand so the caller can yield between bands.
 * Every tensor it keeps lives in the caller's TensorScope.
 */
export class CharacterRenderer {
  readonly bandRows: number;

  private readonly grid: Grid;
  private readonly xBase: T2;
  private readonly rowBase: T2;
  private transfer?: { a: T2; b: T2; mapping?: { colours: T2; norms: T2; strength: number } };
  private paletteOrigin: PaletteOrigin = 'generated';

  private constructor(
    private readonly tf: Tf,
    private readonly scope: TensorScope,
    private readonly network: CppnNetwork,
    private readonly figure: FigureSpec,
    private readonly lighting: LightingSpec,
    private readonly lightingConsts: LightingTensors,
    private readonly colours: { skin: T2; hair: T2; eyes: T2; outfitTint?: T2; hat?: T2 },
    private readonly zoom: number,
    request: RenderRequest,
  ) {
    const { width, height } = request;
    this.grid = { width, height, pixel: 2 / height };
    this.bandRows = Math.max(1, Math.min(height, Math.floor(BAND_PIXELS / width)));
    [this.xBase, this.rowBase] = this.bandBases(this.grid, this.bandRows);
  }

  static create(tf: Tf, scope: TensorScope, request: RenderRequest): CharacterRenderer {
    const seed = request.seed;
    const traits = describeTraits(request.description);
    const z = latentCode(request.description, new SeededRandom(seed, 1));
    const rng = new SeededRandom(seed, 2);
    const network = CppnNetwork.build(tf, scope, rng, z, {
      inputs: INPUTS,
      hidden: HIDDEN,
      outputs: OUTPUTS,
      activations: ACTIVATIONS,
      inputScale: rng.range(1.1, 2.2),
      latentLayers: [0, 2, 4],
    });
    const zoom = rng.range(1.2, 2.4);
    const figure = buildFigure(
      request.pose,
      traits,
      new SeededRandom(seed, 3),
      request.width / request.height,
    );
    const lighting = lightingFor(request.lighting);
    const colours = characterColours(tf, scope, traits, new SeededRandom(seed, 4));
    const lightingConsts = lightingTensors(tf, lighting);
    scope.keep(lightingConsts.matrix);
    return new CharacterRenderer(
      tf,
      scope,
      network,
      figure,
      lighting,
      lightingConsts,
      colours,
      zoom,
      request,
    );
  }

  /** Draws rows [row, row + rows) into `out` (interleaved RGB bytes of the whole image). */
  renderBand(row: number, rows: number, out: Uint8Array): void {
    const { width } = this.grid;
    const n = rows * width;
    const values = this.tf.tidy(() => {
      const x = this.tf.slice(this.xBase, [0, 0], [1, n]);
      const top = ((row + 0.5) / this.grid.height) * 2 - 1;
      const y = this.tf.add<T2>(
        this.tf.mul(this.tf.slice(this.rowBase, [0, 0], [1, n]), this.grid.pixel),
        top,
      );
      const bottom = top + (rows - 1) * this.grid.pixel;
      const rgb = this.finish(x, y, top, bottom, this.grid);
      return this.tf.transpose(this.tf.mul(rgb, 255));
    });
    try {
      // Uint8ClampedArray rounds and clamps the floats for us.
      new Uint8ClampedArray(out.buffer, out.byteOffset + row * width * 3, n * 3).set(
        values.dataSync(),
      );
    } finally {
      values.dispose();
    }
  }

  /** Composite, palette and lighting at points x, y ([1, N]); rows between top and bottom. */
  private finish(x: T2, y: T2, top: number, bottom: number, grid: Grid): T2 {
    const tf = this.tf;
    const { rgb, all, figure } = this.composite(x, y, top, bottom, grid);
    let out = rgb;
    if (this.transfer) {
      out = tf.add<T2>(tf.matMul(this.transfer.a, out), this.transfer.b);
      const { mapping } = this.transfer;
      if (mapping) out = mapToPalette(tf, tf.clipByValue<T2>(out, 0, 1), mapping, mapping.strength);
    }
    return applyLighting(tf, this.lighting, this.lightingConsts, out, {
      x,
      y,
      all,
      figure,
      centre: this.figure.centre,
      pixel: grid.pixel,
    });
  }

  /** The character over its background, before palette and lighting: [3, N] in 0..1. */
  private composite(
    x: T2,
    y: T2,
    top: number,
    bottom: number,
    grid: Grid,
  ): { rgb: T2; all: T2; figure: T2 } {
    const tf = this.tf;
    const f = figureFields(tf, this.figure, x, y, top, bottom);
    const all = tf.minimum<T2>(f.all, f.hair);
    // Anti-aliased masks: a sigmoid a little under a pixel wide.
    const mask = (d: TfCore.Tensor) => tf.sigmoid(tf.mul(d, -1 / (0.6 * grid.pixel))) as T2;
    const figure = mask(all);

    const r = tf.sqrt(tf.add(tf.square(x), tf.square(y)));
    const features = tf.transpose(
      tf.concat(
        [
          tf.mul(x, this.zoom),
          tf.mul(y, this.zoom),
          tf.mul(r, this.zoom),
          tf.clipByValue(tf.mul(all, 6), -1, 1),
          figure,
        ],
        0,
      ),
    ) as T2;
    const out = tf.transpose<T2>(this.network.forward(features));
    const n = x.shape[1];
    const rowsOf = (start: number, count: number) => tf.slice(out, [start, 0], [count, n]);
    const background = rowsOf(0, 3);
    let outfit = rowsOf(3, 3);
    const detail = rowsOf(6, 1);
    const lerp = (a: TfCore.Tensor, b: TfCore.Tensor, m: TfCore.Tensor | number) =>
      tf.add(a, tf.mul(tf.sub(b, a), m));

    const { skin, hair, eyes, outfitTint, hat } = this.colours;
    if (outfitTint) {
      // Keep the network's light and shade, take the named colour.
      const luma = tf.matMul(tf.tensor2d([[...LUMA]]), outfit);
      outfit = lerp(outfit, tf.mul(tf.mul(luma, outfitTint), 1.7), 0.7) as T2;
    }
    const hatMask = mask(f.group.hat);
    const skinMask = mask(f.group.skin);
    const hairMask = tf.mul(mask(f.hair), tf.sub(1, hatMask));
    const eyeMask = tf.mul(mask(f.group.eyes), tf.sub(1, hatMask));

    // Props (a seat) sit behind the body; then skin, hair, hat and eyes over the outfit.
    const propMask = tf.mul(mask(f.group.prop), tf.sub(1, mask(f.group.body)));
    let fig: TfCore.Tensor = lerp(outfit, tf.mul(background, 0.45), propMask);
    fig = lerp(fig, tf.mul(skin, tf.add(0.9, tf.mul(detail, 0.2))), skinMask);
    fig = lerp(fig, tf.mul(hair, tf.add(0.7, tf.mul(detail, 0.6))), hairMask);
    fig = lerp(fig, hat ?? tf.mul(outfit, 0.5), hatMask);
    fig = lerp(fig, eyes, eyeMask);
    // Volume: darker towards the silhouette's edge, like a lit cylinder.
    fig = tf.mul(fig, tf.add(0.68, tf.mul(tf.clipByValue(tf.mul(all, -1 / 0.04), 0, 1), 0.32)));

    // Ground shadow under the feet and a soft drop shade around the figure set it off the ground.
    const shade = tf.add(
      tf.mul(f.shadow, 0.45),
      tf.mul(tf.clipByValue(tf.sub(1, tf.mul(all, 1 / 0.06)), 0, 1), 0.25),
    );
    const ground = tf.mul(background, tf.sub(1, shade));
    let rgb: TfCore.Tensor = lerp(ground, fig, figure);

    // Ink lines on the silhouette and between the figure's regions.
    const line = Math.max(1.3 * grid.pixel, 0.0045);
    const ink = (d: TfCore.Tensor) => tf.clipByValue(tf.sub(1, tf.mul(tf.abs(d), 1 / line)), 0, 1);
    const inner = tf.maximum(
      tf.maximum(
        tf.mul(ink(f.group.skin), tf.mul(tf.sub(1, hairMask), tf.sub(1, hatMask))),
        ink(f.hair),
      ),
      tf.maximum(ink(f.group.hat), ink(f.group.prop)),
    );
    const lines = tf.maximum(ink(all), tf.mul(tf.mul(inner, figure), 0.7));
    rgb = tf.mul(rgb, tf.sub(1, tf.mul(lines, 0.85)));
    return { rgb: rgb as T2, all, figure };
  }

  /** How the image was made, for the result's metadata (renders a small preview). */
  summary(): RenderSummary {
    return {
      pose_preset: this.figure.preset,
      lighting_preset: this.lighting.preset,
      palette_source: this.paletteOrigin,
      palette: this.previewPalette(),
    };
  }

  /**
   * Transfers the palette of the style guide and references onto the image: YCbCr mean and
   * deviation of the sources against those of a small render, plus a pull towards their k-means
   * colours. Call before rendering bands.
   */
  usePalette(inputs: PaletteInputs): void {
    const sources = paletteSources(inputs);
    if (sources.list.length === 0) return;
    this.paletteOrigin = sources.origin;
    const tf = this.tf;
    const palette = extractPalette(tf, sources.list);
    const preview = this.previewGrid();
    const generated = tf.tidy(() => {
      const [x, y] = this.previewPoints(preview);
      return this.composite(x, y, -1, 1, preview).rgb;
    });
    const stats = colourStats(tf, generated);
    generated.dispose();
    // A style guide sets the look; references only steer it.
    const strong = inputs.styleGuide !== undefined;
    const { a, b } = transferMap(tf, stats, palette.stats, strong ? 0.85 : 0.6);
    const colours = tf.tensor2d(palette.colours);
    this.transfer = {
      a: this.scope.keep(a),
      b: this.scope.keep(b),
      mapping: {
        colours: this.scope.keep(colours),
        norms: this.scope.keep(tf.tidy(() => tf.sum(tf.square(colours), 1, true))),
        strength: strong ? 0.3 : 0.2,
      },
    };
  }

  /** Dominant colours of the finished image, from a small render of the same network. */
  private previewPalette(): string[] {
    const tf = this.tf;
    const preview = this.previewGrid();
    const pixels = tf.tidy(() => {
      const [x, y] = this.previewPoints(preview);
      const rgb = tf.concat([this.finish(x, y, -1, 1, preview), tf.ones([1, x.shape[1]])], 0);
      return tf.cast(tf.round(tf.mul(tf.clipByValue(tf.transpose(rgb), 0, 1), 255)), 'int32');
    });
    const bytes = Uint8Array.from(pixels.dataSync());
    pixels.dispose();
    return extractPalette(tf, [{ pixels: bytes, weight: 1 }]).colours.map(toHex);
  }

  private previewGrid(): Grid {
    const aspect = this.grid.width / this.grid.height;
    const height = Math.max(8, Math.round(Math.sqrt(PREVIEW_PIXELS / aspect)));
    const width = Math.max(8, Math.round(height * aspect));
    return { width, height, pixel: 2 / height };
  }

  private previewPoints(grid: Grid): [T2, T2] {
    const [xBase, rowBase] = this.bandBases(grid, grid.height, false);
    const y = this.tf.add<T2>(this.tf.mul(rowBase, grid.pixel), grid.pixel / 2 - 1);
    return [xBase, y];
  }

  /** x of every pixel of a band and its row index, [1, rows·width] each. */
  private bandBases(grid: Grid, rows: number, keep = true): [T2, T2] {
    const n = rows * grid.width;
    const xs = new Float32Array(n);
    const rs = new Float32Array(n);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < grid.width; c++) {
        xs[r * grid.width + c] = (c + 0.5 - grid.width / 2) * grid.pixel;
        rs[r * grid.width + c] = r;
      }
    }
    const x = this.tf.tensor2d(xs, [1, n]);
    const row = this.tf.tensor2d(rs, [1, n]);
    return keep ? [this.scope.keep(x), this.scope.keep(row)] : [x, row];
  }
}

/** Description embedding mixed with seeded noise, unit length: the network's latent code. */
function latentCode(description: string, rng: SeededRandom): Float32Array {
  const embedding = embedDescription(description, EMBEDDING_DIMS);
  const noise = rng.normals(EMBEDDING_DIMS, 1 / Math.sqrt(EMBEDDING_DIMS));
  const z = embedding.map((v, i) => v + 0.45 * noise[i]);
  const norm = Math.hypot(...z) || 1;
  return z.map((v) => v / norm);
}

function characterColours(
  tf: Tf,
  scope: TensorScope,
  traits: DescriptionTraits,
  rng: SeededRandom,
): { skin: T2; hair: T2; eyes: T2; outfitTint?: T2; hat?: T2 } {
  const col = (c: Rgb) => scope.keep(tf.tensor2d([c[0], c[1], c[2]], [3, 1]));
  const skin = rng.pick(SKIN_TONES);
  const hair = traits.hair ?? rng.pick(HAIR_COLOURS);
  const [first, second] = traits.colours;
  return {
    skin: col(skin),
    hair: col(hair),
    eyes: col(EYES),
    outfitTint: first ? col(first) : undefined,
    hat: second ? col(second) : undefined,
  };
}

function paletteSources(inputs: PaletteInputs): { list: PaletteSource[]; origin: PaletteOrigin } {
  const refs = inputs.references ?? [];
  const guide = inputs.styleGuide;
  const list: PaletteSource[] = [];
  if (guide) list.push({ pixels: guide, weight: refs.length > 0 ? 0.65 : 1 });
  for (const pixels of refs) list.push({ pixels, weight: (guide ? 0.35 : 1) / refs.length });
  const origin: PaletteOrigin = guide
    ? refs.length > 0
      ? 'style_guide+reference_images'
      : 'style_guide'
    : refs.length > 0
      ? 'reference_images'
      : 'generated';
  return { list, origin };
}
