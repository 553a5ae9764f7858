import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { InputsModule } from '../../inputs/inputs.module';
import { FaceAnalyzer } from '../../media/faces/face.analyzer';
import { AnalyzeCharacterProcessor } from './analyze-character.processor';

@Module({
  imports: [GpuModule, InputsModule],
  providers: [FaceAnalyzer, AnalyzeCharacterProcessor],
  exports: [AnalyzeCharacterProcessor],
})
export class AnalyzeCharacterModule {}
