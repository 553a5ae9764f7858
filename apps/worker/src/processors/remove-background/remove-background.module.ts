import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { InputsModule } from '../../inputs/inputs.module';
import { PersonSegmenter } from '../../media/segmentation/person.segmenter';
import { RemoveBackgroundProcessor } from './remove-background.processor';

@Module({
  imports: [GpuModule, InputsModule],
  providers: [PersonSegmenter, RemoveBackgroundProcessor],
  exports: [RemoveBackgroundProcessor],
})
export class RemoveBackgroundModule {}
