import { Module } from '@nestjs/common';
import { InputsModule } from '../../inputs/inputs.module';
import { RenderAnimationProcessor } from './render-animation.processor';

@Module({
  imports: [InputsModule],
  providers: [RenderAnimationProcessor],
  exports: [RenderAnimationProcessor],
})
export class RenderAnimationModule {}
