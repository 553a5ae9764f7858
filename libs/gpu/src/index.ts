export * from './gpu.module';
export * from './gpu.service';
export * from './gpu-device.monitor';
export * from './gpu-health.indicator';
export * from './models';
export * from './tensor-scope';
export {
  CUDA_TFJS_PACKAGE,
  TfjsBackendError,
  type TfjsBackendName,
  type TfjsBackendSelection,
} from './tfjs-backend.selection';
