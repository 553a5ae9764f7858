export * from './gpu.module';
export * from './gpu.service';
export * from './tensor-scope';
export {
  TfjsBackendError,
  type TfjsBackendName,
  type TfjsBackendSelection,
} from './tfjs-backend.selection';
