import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { AppConfig } from '@app/config';
import * as tfCore from '@tensorflow/tfjs-core';
import { withTensorScope, type TensorScope } from './tensor-scope';
import {
  CUDA_TFJS_PACKAGE,
  selectTfjsBackend,
  type TfjsBackendName,
  type TfjsBackendSelection,
} from './tfjs-backend.selection';

/** What runs the tensors; snake_case because it is reported as is (health, worker status). */
export interface GpuDescription {
  backend: TfjsBackendName;
  device: 'gpu' | 'cpu';
  package: string;
  tfjs_version: string;
  wasm_threads?: number;
  wasm_simd?: boolean;
}

export interface GpuMemoryInfo {
  numTensors: number;
  numDataBuffers: number;
  /** Bytes held by live tensors (the node backend does not count VRAM: read nvidia-smi). */
  numBytes: number;
  unreliable: boolean;
  /** Size of the wasm heap; it grows to the peak and never shrinks. */
  wasmHeapBytes?: number;
}

/**
 * The tfjs runtime of this process: picks the backend once (TFJS_BACKEND) and gives processors the
 * `tf` namespace plus bookkeeping to keep tensors bounded.
 */
@Injectable()
export class GpuService implements OnModuleInit {
  /** The `@tensorflow/tfjs-core` namespace, running on the selected backend after init. */
  readonly tf: typeof tfCore = tfCore;

  private readonly logger = new Logger(GpuService.name);
  private selection?: TfjsBackendSelection;
  private starting?: Promise<TfjsBackendSelection>;

  constructor(private readonly config: AppConfig) {}

  async onModuleInit(): Promise<void> {
    await this.init();
  }

  /** Idempotent; several modules (and services) may call it, the engine starts once. */
  async init(): Promise<TfjsBackendSelection> {
    if (this.selection) return this.selection;
    this.starting ??= selectTfjsBackend(this.config.gpu.backend).then(
      (selection) => {
        this.selection = selection;
        this.logger.log(
          `tfjs backend: ${selection.backend} on ${selection.device} (${selection.package}` +
            (selection.backend === 'wasm'
              ? `, ${selection.wasmThreads ?? 1} thread(s), simd ${selection.wasmSimd ? 'on' : 'off'}`
              : '') +
            `; TFJS_BACKEND=${selection.choice}` +
            (selection.skipped.length > 0 ? `; skipped ${selection.skipped.join('; ')}` : '') +
            ')',
        );
        return selection;
      },
      (err: unknown) => {
        this.starting = undefined;
        throw err;
      },
    );
    return this.starting;
  }

  get backendName(): TfjsBackendName {
    return this.started().backend;
  }

  /**
   * The CUDA backend (tfjs-node-gpu) is loaded: a GPU is expected, and not being able to read it
   * is a fault. tfjs-node (CPU) also reports the backend 'tensorflow', so the name is not enough.
   */
  get expectsGpu(): boolean {
    return this.started().package === CUDA_TFJS_PACKAGE;
  }

  /** Tensors run on a CUDA device (tfjs-node-gpu found one); false for every other backend. */
  get usesGpu(): boolean {
    return this.started().device === 'gpu';
  }

  describe(): GpuDescription {
    const s = this.started();
    return {
      backend: s.backend,
      device: s.device,
      package: s.package,
      tfjs_version: tfCore.version_core,
      ...(s.backend === 'wasm' ? { wasm_threads: s.wasmThreads, wasm_simd: s.wasmSimd } : {}),
    };
  }

  tensorCount(): number {
    return this.tf.memory().numTensors;
  }

  memory(): GpuMemoryInfo {
    const m = this.tf.memory();
    const info: GpuMemoryInfo = {
      numTensors: m.numTensors,
      numDataBuffers: m.numDataBuffers,
      numBytes: m.numBytes,
      unreliable: m.unreliable === true,
    };
    if (this.selection?.backend === 'wasm') {
      const heap = (this.tf.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
      if (heap) info.wasmHeapBytes = heap.byteLength;
    }
    return info;
  }

  /**
   * Runs tensor work in a TensorScope (see withTensorScope) and logs a warning naming `label`
   * when the engine ends up holding more tensors than before.
   */
  scoped<T>(label: string, fn: (scope: TensorScope) => Promise<T> | T): Promise<T> {
    return withTensorScope(this.tf, fn, {
      onLeak: (leaked) => this.logger.warn(`${label}: ${leaked} tensor(s) outlived their scope`),
    });
  }

  private started(): TfjsBackendSelection {
    if (!this.selection) {
      throw new Error('GpuService is not initialized: await gpu.init() (Nest does it at boot)');
    }
    return this.selection;
  }
}
