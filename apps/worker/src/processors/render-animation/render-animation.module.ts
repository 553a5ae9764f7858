import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { InputsModule } from '../../inputs/inputs.module';
import { PersonSegmenter } from '../../media/segmentation/person.segmenter';
import { RenderAnimationProcessor } from './render-animation.processor';

@Module({
  imports: [GpuModule, InputsModule],
  providers: [PersonSegmenter, RenderAnimationProcessor],
  exports: [RenderAnimationProcessor],
})
export class RenderAnimationModule {}
