import { Global, Module } from '@nestjs/common';
import { AppConfig } from '@app/config';
import { StorageDriver, StorageModule } from '@app/storage';
import { GpuService } from './gpu.service';
import { GpuDeviceMonitor } from './gpu-device.monitor';
import {
  bundledModelsDir,
  DirectoryModelSource,
  MODEL_SOURCES,
  ModelRepository,
  PackageModelSource,
  type ModelSource,
} from './models';
import { StorageModelSource } from './models/storage-model-source';

/** The model sources, highest precedence first: a deployment's own folder overrides the rest. */
export function defaultModelSources(config: AppConfig, storage?: StorageDriver): ModelSource[] {
  const bundled = bundledModelsDir();
  return [
    new DirectoryModelSource('models_dir', config.gpu.modelsDir),
    ...(storage && config.gpu.modelsFromStorage
      ? [new StorageModelSource(storage, config.gpu.modelCacheDir)]
      : []),
    ...(bundled ? [new DirectoryModelSource('bundled', bundled)] : []),
    new PackageModelSource(),
  ];
}

/**
 * Global because the tfjs engine is one per process: every processor module shares the single
 * GpuService and ModelRepository instead of starting its own.
 */
@Global()
@Module({
  imports: [StorageModule],
  providers: [
    GpuService,
    { provide: GpuDeviceMonitor, useFactory: () => new GpuDeviceMonitor() },
    {
      provide: MODEL_SOURCES,
      useFactory: defaultModelSources,
      // Optional: a process without storage (a benchmark, a spec) has the other sources.
      inject: [AppConfig, { token: StorageDriver, optional: true }],
    },
    ModelRepository,
  ],
  exports: [GpuService, GpuDeviceMonitor, ModelRepository, MODEL_SOURCES],
})
export class GpuModule {}
