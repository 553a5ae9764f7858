export * from './model-config';
export * from './model-source';
export * from './model-repository';
export * from './directory-model-source';
export * from './package-models';
export * from './bundled-models';
export { registerFileLoadRouter, readTfjsArtifacts, type TfjsArtifacts } from './model-files';
export type { HumanInstance, HumanResult, ModelHandle } from './model-loaders';
export * from './storage-model-source';
