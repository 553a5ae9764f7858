import { Module } from '@nestjs/common';
import { InputsModule } from '../../inputs/inputs.module';
import { ImageUpscalerModule } from '../../media/image/image-upscaler.module';
import { UpscaleImageProcessor } from './upscale-image.processor';

@Module({
  imports: [InputsModule, ImageUpscalerModule],
  providers: [UpscaleImageProcessor],
  exports: [UpscaleImageProcessor],
})
export class UpscaleImageModule {}
