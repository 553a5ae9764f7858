import type { ModelConfig } from './model-config';
import type { TfjsArtifacts } from './model-files';

/** Where a version was found; also the order of precedence when two sources have the same one. */
export type ModelSourceName = 'models_dir' | 'object_storage' | 'bundled' | 'package';

export interface ModelVersionEntry {
  readonly config: ModelConfig;
  readonly source: ModelSourceName;
  /** Where it is, for listings and logs: a folder, `s3://bucket/models/...`, an npm package. */
  readonly location: string;
  /** A local folder holding the version's files; an object-storage version is downloaded first. */
  localDir(): Promise<string>;
  /**
   * The tfjs artifacts, for packages that ship weights other than as model.json + shards (nsfwjs
   * bundles them as JS modules). Absent: read `config.model_file` from `localDir()`.
   */
  artifacts?(): Promise<TfjsArtifacts>;
}

/** One place models come from. `list` is called at boot and on `ModelRepository.refresh()`. */
export interface ModelSource {
  readonly name: ModelSourceName;
  list(): Promise<ModelVersionEntry[]>;
}

/** DI token: the ModelSource[] of this process, highest precedence first. */
export const MODEL_SOURCES = Symbol('MODEL_SOURCES');
