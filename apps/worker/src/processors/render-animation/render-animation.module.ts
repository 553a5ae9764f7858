import { Module } from '@nestjs/common';
import { StorageModule } from '@app/storage';
import { RenderAnimationProcessor } from './render-animation.processor';

@Module({
  imports: [StorageModule],
  providers: [RenderAnimationProcessor],
  exports: [RenderAnimationProcessor],
})
export class RenderAnimationModule {}
