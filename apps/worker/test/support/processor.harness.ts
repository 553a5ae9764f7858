import type { Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { AppConfig, ConfigModule } from '@app/config';
import { GpuService } from '@app/gpu';
import { TestSigningKeysModule } from '@app/testing';
import type { TaskOutput } from '../../src/runtime/task-processor';

export interface StartedProcessor<P> {
  processor: P;
  /** The module's tfjs service (asking for it throws when the processor does not use tfjs). */
  readonly gpu: GpuService;
  /** Another provider of the module (e.g. a service the processor uses). */
  get<T>(token: Type<T>): T;
  close(): Promise<void>;
}

/**
 * A processor's own module booted alone (tfjs on the best backend here, inputs allowed from the
 * test's loopback file server), for specs that call `process()` directly.
 */
export async function startProcessor<P>(
  module: Type<unknown>,
  processorClass: Type<P>,
): Promise<StartedProcessor<P>> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ConfigModule.forRoot(
        AppConfig.fromEnv({
          API_KEYS: 'test-key',
          TFJS_BACKEND: 'auto',
          ALLOW_PRIVATE_URLS: 'true',
        }),
      ),
      // StorageModule signs media URLs; no Redis here to derive the keys from.
      TestSigningKeysModule,
      module,
    ],
  }).compile();
  await moduleRef.init();
  return {
    processor: moduleRef.get(processorClass),
    get gpu() {
      return moduleRef.get(GpuService, { strict: false });
    },
    get: (token) => moduleRef.get(token, { strict: false }),
    close: () => moduleRef.close(),
  };
}

/** The path of an output written to a file (video, animation). */
export function outputFile(output: TaskOutput): string {
  if (output.media.kind !== 'file') throw new Error('expected a file');
  return output.media.path;
}
