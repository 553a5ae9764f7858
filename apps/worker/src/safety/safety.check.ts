import { Injectable, Logger } from '@nestjs/common';
import { AppConfig } from '@app/config';
import type { TaskDefinition } from '@app/tasks';
import { RunSafety, type RunSafetyLog } from './run-safety';
import { SafetyClassifier } from './safety.classifier';

/** One image classified for a task: its input or its output, and whether it blocked the task. */
export interface SafetyCheckEvent {
  target: 'input' | 'output';
  taskType: string;
  blocked: boolean;
}

/**
 * The image safety check of the runtime, for every task type whose `task_data` has
 * `safety_check: true` (SafetyCheckField): the output of image types and the input images the
 * processor hands over (RunningTask.safety) are classified, the scores go in
 * `result.metadata.safety`, and with SAFETY_BLOCK_THRESHOLD set an image above it fails the task
 * with `content_blocked` before anything is stored. Processors do nothing for the output check.
 */
@Injectable()
export class SafetyCheck {
  private readonly logger = new Logger(SafetyCheck.name);
  private readonly listeners = new Set<(e: SafetyCheckEvent) => void>();

  constructor(
    private readonly classifier: SafetyClassifier,
    private readonly config: AppConfig,
  ) {}

  /** SAFETY_BLOCK_THRESHOLD; null: never block. */
  get threshold(): number | null {
    return this.config.safety.blockThreshold;
  }

  /** Whether a task's validated data asked for the check. */
  static requested(data: object): boolean {
    return (data as { safety_check?: unknown }).safety_check === true;
  }

  /** The check of one run (a no-op when its data did not ask for it). */
  forRun(def: TaskDefinition, data: object, log: RunSafetyLog, signal: AbortSignal): RunSafety {
    return new RunSafety(
      {
        enabled: SafetyCheck.requested(data),
        checksOutput: def.mediaKind === 'image',
        taskType: def.type,
        threshold: this.threshold,
        log,
        signal,
      },
      this.classifier,
      this.logger,
      (event) => this.emit(event),
    );
  }

  /** Subscribes to every image classified (the worker's metrics do); returns the unsubscribe. */
  onCheck(listener: (e: SafetyCheckEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: SafetyCheckEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.logger.warn(`safety check listener failed: ${(err as Error).message}`);
      }
    }
  }
}
