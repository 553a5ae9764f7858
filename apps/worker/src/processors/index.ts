import type { Type } from '@nestjs/common';
import { AnalyzeCharacterModule } from './analyze-character/analyze-character.module';
import { GenerateImageModule } from './generate-image/generate-image.module';
import { GenerateVideoModule } from './generate-video/generate-video.module';
import { ProcessAudioModule } from './process-audio/process-audio.module';
import { RemoveBackgroundModule } from './remove-background/remove-background.module';
import { RenderAnimationModule } from './render-animation/render-animation.module';
import { UpscaleImageModule } from './upscale-image/upscale-image.module';

/** One module per task type; the registry checks at boot that each served type has one. */
export const PROCESSOR_MODULES: Type<unknown>[] = [
  GenerateImageModule,
  GenerateVideoModule,
  RenderAnimationModule,
  ProcessAudioModule,
  AnalyzeCharacterModule,
  RemoveBackgroundModule,
  UpscaleImageModule,
];
