import type * as TfCore from '@tensorflow/tfjs-core';

type Tf = typeof TfCore;

/**
 * Tensors that must live across `await`s (weights, accumulators) are kept here and disposed when
 * the scope ends; synchronous work goes through `tidy`. We do not use the engine's
 * startScope/endScope across awaits: its scope stack is process-global, so two tasks interleaving
 * on the event loop would dispose each other's tensors.
 */
export class TensorScope {
  private readonly kept = new Set<TfCore.Tensor>();
  private disposed = false;

  constructor(private readonly tf: Tf) {}

  /** Keeps the tensors alive (also past an enclosing tidy) until the scope ends or `release`. */
  keep<T extends TfCore.Tensor>(tensor: T): T;
  keep<T extends TfCore.Tensor[]>(tensors: T): T;
  keep<T extends TfCore.Tensor | TfCore.Tensor[]>(tensors: T): T {
    if (this.disposed) throw new Error('TensorScope already ended');
    for (const t of Array.isArray(tensors) ? tensors : [tensors]) {
      this.tf.keep(t);
      this.kept.add(t);
    }
    return tensors;
  }

  /** Runs synchronous tensor code; every intermediate is disposed, the result is returned. */
  tidy<T extends TfCore.TensorContainer>(fn: () => T): T {
    return this.tf.tidy(fn);
  }

  /** Disposes kept tensors early, e.g. a band's output once it has been read. */
  release(...tensors: TfCore.Tensor[]): void {
    for (const t of tensors) {
      this.kept.delete(t);
      t.dispose();
    }
  }

  get size(): number {
    return this.kept.size;
  }

  dispose(): void {
    this.disposed = true;
    for (const t of this.kept) t.dispose();
    this.kept.clear();
  }
}

export interface TensorScopeOptions {
  /**
   * Called when the engine holds more tensors after the scope than before, and no other scope ran
   * meanwhile (with overlapping scopes the global count says nothing about this one).
   */
  onLeak?: (leaked: number) => void;
}

let openScopes = 0;
let scopeGeneration = 0;

/**
 * Runs `fn` with a TensorScope and disposes everything it kept, whether `fn` resolves or throws,
 * so the tensor count returns to its baseline after each task.
 */
export async function withTensorScope<T>(
  tf: Tf,
  fn: (scope: TensorScope) => Promise<T> | T,
  options: TensorScopeOptions = {},
): Promise<T> {
  const baseline = tf.memory().numTensors;
  const generation = ++scopeGeneration;
  const wasAlone = openScopes === 0;
  openScopes += 1;
  const scope = new TensorScope(tf);
  try {
    return await fn(scope);
  } finally {
    scope.dispose();
    openScopes -= 1;
    const alone = wasAlone && openScopes === 0 && scopeGeneration === generation;
    const leaked = tf.memory().numTensors - baseline;
    if (alone && leaked > 0) options.onLeak?.(leaked);
  }
}

/**
 * `tf.tidy` for synchronous code that returns plain values (numbers, arrays): every tensor made in
 * `fn` is disposed. tidy's typing only accepts tensor results.
 */
export function tidyValue<T>(tf: Tf, fn: () => T): T {
  tf.engine().startScope();
  try {
    return fn();
  } finally {
    tf.engine().endScope();
  }
}
