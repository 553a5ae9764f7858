import { Inject, Injectable, Optional } from '@nestjs/common';
import { ANALYZE_CHARACTER_TASK } from './analyze-character/analyze-character.task';
import { GENERATE_IMAGE_TASK } from './generate-image/generate-image.task';
import { GENERATE_VIDEO_TASK } from './generate-video/generate-video.task';
import { PROCESS_AUDIO_TASK } from './process-audio/process-audio.task';
import { REMOVE_BACKGROUND_TASK } from './remove-background/remove-background.task';
import { RENDER_ANIMATION_TASK } from './render-animation/render-animation.task';
import type { TaskDefinition } from './task-definition';
import { UPSCALE_IMAGE_TASK } from './upscale-image/upscale-image.task';

/** Every task type the service offers. Adding one here requires a processor in apps/worker. */
export const TASK_DEFINITIONS: readonly TaskDefinition<any>[] = [
  GENERATE_IMAGE_TASK,
  GENERATE_VIDEO_TASK,
  RENDER_ANIMATION_TASK,
  PROCESS_AUDIO_TASK,
  ANALYZE_CHARACTER_TASK,
  REMOVE_BACKGROUND_TASK,
  UPSCALE_IMAGE_TASK,
];

/** Extra definitions for tests and benchmarks (e.g. a no-op type); never set by the apps. */
export const EXTRA_TASK_DEFINITIONS = Symbol('EXTRA_TASK_DEFINITIONS');

@Injectable()
export class TaskDefinitions {
  private readonly byType: Map<string, TaskDefinition<any>>;

  constructor(@Optional() @Inject(EXTRA_TASK_DEFINITIONS) extra?: readonly TaskDefinition<any>[]) {
    this.byType = new Map([...TASK_DEFINITIONS, ...(extra ?? [])].map((d) => [d.type, d]));
  }

  types(): string[] {
    return [...this.byType.keys()];
  }

  all(): TaskDefinition<any>[] {
    return [...this.byType.values()];
  }

  get(type: string): TaskDefinition<any> | undefined {
    return this.byType.get(type);
  }
}
