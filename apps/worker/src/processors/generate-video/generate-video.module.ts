import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { StorageModule } from '@app/storage';
import { GenerateVideoProcessor } from './generate-video.processor';

@Module({
  imports: [GpuModule, StorageModule],
  providers: [GenerateVideoProcessor],
  exports: [GenerateVideoProcessor],
})
export class GenerateVideoModule {}
