import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { InputsModule } from '../../inputs/inputs.module';
import { ProcessAudioProcessor } from './process-audio.processor';

@Module({
  imports: [GpuModule, InputsModule],
  providers: [ProcessAudioProcessor],
  exports: [ProcessAudioProcessor],
})
export class ProcessAudioModule {}
