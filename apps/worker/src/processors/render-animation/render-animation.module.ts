import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { StorageModule } from '@app/storage';
import { RenderAnimationProcessor } from './render-animation.processor';

@Module({
  imports: [GpuModule, StorageModule],
  providers: [RenderAnimationProcessor],
  exports: [RenderAnimationProcessor],
})
export class RenderAnimationModule {}
