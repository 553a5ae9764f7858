import type { Type } from '@nestjs/common';
import { GenerateImageModule } from './generate-image/generate-image.module';

/** One module per task type; the registry checks at boot that each served type has one. */
export const PROCESSOR_MODULES: Type<unknown>[] = [GenerateImageModule];
