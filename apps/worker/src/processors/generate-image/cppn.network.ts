import type * as TfCore from '@tensorflow/tfjs-core';
import type { TensorScope } from '@app/gpu';
import type { SeededRandom } from './seeded.random';

type Tf = typeof TfCore;

/**
 * Hidden-layer activations. All are built from ops that are fast on the wasm backend (its tanh
 * and sin are ~15x slower than sigmoid, round and abs):
 * - tanh: 2·sigmoid(2v) − 1, the sigmoid fused into the matMul;
 * - psin: a piecewise-parabolic sine (periodic stripes and rings);
 * - bump: 1 / (1 + v²), a Gaussian-like bump.
 */
export type CppnActivation = 'tanh' | 'psin' | 'bump';

export interface CppnOptions {
  inputs: number;
  hidden: number;
  outputs: number;
  activations: readonly CppnActivation[];
  /** Spread of first-layer weights: higher means finer patterns. */
  inputScale: number;
  /** Layers (0-based) whose bias receives the latent code. */
  latentLayers: readonly number[];
}

interface Layer {
  w: TfCore.Tensor2D;
  b: TfCore.Tensor1D;
  activation: CppnActivation | 'sigmoid';
}

/**
 * A compositional pattern-producing network: a per-pixel MLP from coordinates (and figure fields)
 * to colour. Weights come from the seeded PRNG; the latent code z (description + seed) shifts the
 * biases of some layers, so one seed gives a family of images and the description picks one.
 */
export class CppnNetwork {
  private constructor(
    private readonly tf: Tf,
    private readonly layers: readonly Layer[],
  ) {}

  static build(
    tf: Tf,
    scope: TensorScope,
    rng: SeededRandom,
    z: Float32Array,
    options: CppnOptions,
  ): CppnNetwork {
    const { inputs, hidden, outputs, activations } = options;
    const dims = [inputs, ...activations.map(() => hidden), outputs];
    const kinds: (CppnActivation | 'sigmoid')[] = [...activations, 'sigmoid'];
    // Each activation's output is `scale · a + shift` of what we compute; the next layer absorbs it.
    let inScale = 1;
    let inShift = 0;
    const layers: Layer[] = [];
    for (let l = 0; l < kinds.length; l++) {
      const fanIn = dims[l];
      const fanOut = dims[l + 1];
      const kind = kinds[l];
      const std =
        l === 0
          ? options.inputScale
          : kind === 'sigmoid'
            ? 2.4 / Math.sqrt(fanIn)
            : 1.7 / Math.sqrt(fanIn);
      const w = rng.normals(fanIn * fanOut, std);
      const b = rng.normals(fanOut, l === 0 ? 0.6 : 0.4);
      if (options.latentLayers.includes(l)) {
        const wz = rng.normals(z.length * fanOut, 1.1);
        for (let o = 0; o < fanOut; o++) {
          let acc = 0;
          for (let i = 0; i < z.length; i++) acc += z[i] * wz[i * fanOut + o];
          b[o] += acc;
        }
      }
      // Fold the previous layer's output affine map: (s·a + t)·W + b = a·(s·W) + (b + t·ΣW).
      for (let o = 0; o < fanOut; o++) {
        let colSum = 0;
        for (let i = 0; i < fanIn; i++) colSum += w[i * fanOut + o];
        b[o] += inShift * colSum;
      }
      if (inScale !== 1) for (let i = 0; i < w.length; i++) w[i] *= inScale;
      // And pre-scale this layer for its activation's cheap form.
      const pre = kind === 'tanh' ? 2 : kind === 'psin' ? 1 / (2 * Math.PI) : 1;
      if (pre !== 1) {
        for (let i = 0; i < w.length; i++) w[i] *= pre;
        for (let i = 0; i < b.length; i++) b[i] *= pre;
      }
      [inScale, inShift] = kind === 'tanh' ? [2, -1] : kind === 'psin' ? [8, 0] : [1, 0];
      layers.push({
        w: scope.keep(tf.tensor2d(w, [fanIn, fanOut])),
        b: scope.keep(tf.tensor1d(b)),
        activation: kind,
      });
    }
    return new CppnNetwork(tf, layers);
  }

  /** Features [N, inputs] → colours [N, outputs] in 0..1. Call inside tidy. */
  forward(features: TfCore.Tensor2D): TfCore.Tensor2D {
    let h = features;
    for (const layer of this.layers) {
      // One tidy per layer and early disposal: a band's peak memory is ~2 layers, not all of them.
      const next = this.tf.tidy(() => this.layer(layer, h));
      if (h !== features) h.dispose();
      h = next;
    }
    return h;
  }

  private layer({ w, b, activation }: Layer, h: TfCore.Tensor2D): TfCore.Tensor2D {
    const tf = this.tf;
    switch (activation) {
      case 'tanh':
      case 'sigmoid':
        return tf.fused.matMul({ a: h, b: w, bias: b, activation: 'sigmoid' }) as TfCore.Tensor2D;
      case 'psin': {
        // v / 2π folded into the weights: f is the phase in [-0.5, 0.5]; f·(1 − 2|f|) = sin/8.
        const v = tf.fused.matMul({ a: h, b: w, bias: b });
        const f = tf.sub(v, tf.round(v));
        return tf.mul<TfCore.Tensor2D>(f, tf.sub(1, tf.mul(tf.abs(f), 2)));
      }
      case 'bump': {
        const v = tf.fused.matMul({ a: h, b: w, bias: b });
        return tf.reciprocal(tf.add(tf.square(v), 1)) as TfCore.Tensor2D;
      }
    }
  }
}
