import { Module } from '@nestjs/common';
import { InputsModule } from '../../inputs/inputs.module';
import { GenerateVideoProcessor } from './generate-video.processor';

@Module({
  imports: [InputsModule],
  providers: [GenerateVideoProcessor],
  exports: [GenerateVideoProcessor],
})
export class GenerateVideoModule {}
