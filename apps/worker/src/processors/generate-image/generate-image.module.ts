import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { InputsModule } from '../../inputs/inputs.module';
import { ImageUpscalerModule } from '../../media/image/image-upscaler.module';
import { GenerateImageProcessor } from './generate-image.processor';

@Module({
  imports: [GpuModule, InputsModule, ImageUpscalerModule],
  providers: [GenerateImageProcessor],
  exports: [GenerateImageProcessor],
})
export class GenerateImageModule {}
