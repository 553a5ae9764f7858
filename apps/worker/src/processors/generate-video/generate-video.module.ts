import { Module } from '@nestjs/common';
import { StorageModule } from '@app/storage';
import { GenerateVideoProcessor } from './generate-video.processor';

@Module({
  imports: [StorageModule],
  providers: [GenerateVideoProcessor],
  exports: [GenerateVideoProcessor],
})
export class GenerateVideoModule {}
