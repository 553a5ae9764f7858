import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { StorageModule } from '@app/storage';
import { GenerateImageProcessor } from './generate-image.processor';

@Module({
  imports: [GpuModule, StorageModule],
  providers: [GenerateImageProcessor],
  exports: [GenerateImageProcessor],
})
export class GenerateImageModule {}
