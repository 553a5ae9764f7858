import type * as TfCore from '@tensorflow/tfjs-core';
import { serialization } from '@tensorflow/tfjs-core';
import { layers, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { ModelConfigError } from './model-config';

type Input = TfCore.Tensor | TfCore.Tensor[] | SymbolicTensor | SymbolicTensor[];
const first = (x: Input): TfCore.Tensor => (Array.isArray(x) ? x[0] : x) as TfCore.Tensor;

/**
 * Layers that ESRGAN's RRDN models (esrgan-thick) use beyond stock Keras: the residual scaling
 * by β = 0.2 and the sub-pixel upsampling (depth-to-space). As UpscalerJS defines them.
 */
function makeLayer(
  tf: typeof TfCore,
  className: string,
): serialization.SerializableConstructor<serialization.Serializable> | undefined {
  if (className === 'MultiplyBeta') {
    return class MultiplyBeta extends layers.Layer {
      static className = 'MultiplyBeta';
      constructor() {
        super({});
      }
      override call(inputs: Input): TfCore.Tensor {
        return tf.mul(first(inputs), 0.2);
      }
    };
  }
  const shuffle = /^PixelShuffle(\d)x$/.exec(className);
  if (shuffle) {
    const scale = Number(shuffle[1]);
    const cls = class extends layers.Layer {
      static className = className;
      constructor() {
        super({});
      }
      override computeOutputShape(inputShape: number[]): number[] {
        return [inputShape[0], inputShape[1], inputShape[2], 3];
      }
      override call(inputs: Input): TfCore.Tensor {
        return tf.depthToSpace(first(inputs) as TfCore.Tensor4D, scale, 'NHWC');
      }
    };
    return cls;
  }
  return undefined;
}

const registered = new Set<string>();

/** Registers the named custom layers with tfjs once per process; unknown names are an error. */
export function registerCustomLayers(tf: typeof TfCore, names: readonly string[]): void {
  for (const name of names) {
    if (registered.has(name)) continue;
    const cls = makeLayer(tf, name);
    if (!cls) throw new ModelConfigError(`custom layer ${name} is not one libs/gpu knows`);
    serialization.registerClass(cls);
    registered.add(name);
  }
}
