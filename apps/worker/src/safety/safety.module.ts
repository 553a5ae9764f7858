import { Module } from '@nestjs/common';
import { GpuModule } from '@app/gpu';
import { SafetyCheck } from './safety.check';
import { SafetyClassifier } from './safety.classifier';

/**
 * The image safety check (`safety_check: true`): the classifier on the model repository's
 * NSFW_MODEL and the runtime's per-run check. The models come from GpuModule's repository.
 */
@Module({
  imports: [GpuModule],
  providers: [SafetyClassifier, SafetyCheck],
  exports: [SafetyClassifier, SafetyCheck],
})
export class SafetyModule {}
