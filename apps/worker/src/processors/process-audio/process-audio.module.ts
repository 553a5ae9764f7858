import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { StorageModule } from '@app/storage';
import { ProcessAudioProcessor } from './process-audio.processor';

@Module({
  imports: [GpuModule, StorageModule],
  providers: [ProcessAudioProcessor],
  exports: [ProcessAudioProcessor],
})
export class ProcessAudioModule {}
