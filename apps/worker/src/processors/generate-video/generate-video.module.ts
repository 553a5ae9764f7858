import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { InputsModule } from '../../inputs/inputs.module';
import { FaceAnalyzer } from '../../media/faces/face.analyzer';
import { GenerateVideoProcessor } from './generate-video.processor';

@Module({
  // The face model (framing: faces) is loaded on first use, not at boot: most videos do not ask.
  imports: [GpuModule, InputsModule],
  providers: [FaceAnalyzer, GenerateVideoProcessor],
  exports: [GenerateVideoProcessor],
})
export class GenerateVideoModule {}
