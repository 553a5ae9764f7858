import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { ImageUpscaler } from './image.upscaler';

/** The tiled ESRGAN upscaler, for every processor that super-resolves images. */
@Module({
  imports: [GpuModule],
  providers: [ImageUpscaler],
  exports: [ImageUpscaler],
})
export class ImageUpscalerModule {}
