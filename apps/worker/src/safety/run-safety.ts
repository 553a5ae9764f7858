import type { Logger } from '@nestjs/common';
import { PermanentTaskError } from '../runtime/task-errors';
import type { TaskOutput } from '../runtime/task-processor';
import { ContentBlockedError } from './content-blocked.error';
import type { InputSafety, SafetyInputImage } from './input-safety';
import type { SafetyCheckEvent } from './safety.check';
import {
  UndecodableImageError,
  type SafetyClassification,
  type SafetyClassifier,
  type SafetyImage,
  type SafetyModelInfo,
  type SafetyScores,
} from './safety.classifier';

export type RunSafetyLog = { task_id: string; project_id: string };

/** `result.metadata.safety`. */
export interface SafetyMetadata {
  model: string;
  version: string;
  /** SAFETY_BLOCK_THRESHOLD when the task ran (null: nothing is blocked). */
  threshold: number | null;
  /** Always false in a stored result: a blocked task stores nothing. */
  blocked: false;
  /** The output's scores (image types). */
  scores?: SafetyScores;
  /** Porn + Hentai + Sexy of the output. */
  unsafe_score?: number;
  /** The input images the processor had checked, in the order it handed them over. */
  inputs: Array<{ field: string } & SafetyClassification>;
}

export interface RunSafetyOptions {
  enabled: boolean;
  /** The task type makes images: its output is classified. */
  checksOutput: boolean;
  taskType: string;
  threshold: number | null;
  log: RunSafetyLog;
  signal: AbortSignal;
}

/**
 * The safety check of one run: collects the input images' scores while the processor runs, then
 * classifies the output before it is stored. An image above the threshold throws
 * ContentBlockedError at once: an unsafe input stops the task before it is processed (the
 * platform does not want it processed at all), an unsafe output before it is stored.
 */
export class RunSafety implements InputSafety {
  private readonly inputs: SafetyMetadata['inputs'] = [];
  private model?: SafetyModelInfo;

  constructor(
    private readonly opts: RunSafetyOptions,
    private readonly classifier: SafetyClassifier,
    private readonly logger: Logger,
    private readonly emit: (event: SafetyCheckEvent) => void,
  ) {}

  get enabled(): boolean {
    return this.opts.enabled;
  }

  async checkInputs(
    images: readonly SafetyInputImage[],
    signal: AbortSignal = this.opts.signal,
  ): Promise<void> {
    if (!this.enabled || images.length === 0) return;
    const results = await this.classify(
      images.map((i) => i.data),
      signal,
      (index, err) => new PermanentTaskError(`${images[index].field}: ${err.message}`),
    );
    let blocked: ContentBlockedError | undefined;
    results.forEach((result, i) => {
      const { field } = images[i];
      this.inputs.push({ field, ...result });
      const verdict = this.judge(field, result);
      blocked ??= verdict;
      this.emit({ target: 'input', taskType: this.opts.taskType, blocked: verdict !== undefined });
    });
    this.logger.log(
      this.opts.log,
      `safety check of ${images.length} input image(s): unsafe_score ${results.map((r) => r.unsafe_score).join(', ')}` +
        ` (threshold ${this.opts.threshold ?? 'unset'})`,
    );
    if (blocked) throw blocked;
  }

  /**
   * The output with `metadata.safety` added (the output's scores for image types, the inputs'
   * scores for every type); throws ContentBlockedError when the output crosses the threshold.
   * The output as it is when the task did not ask for the check.
   */
  async checkOutput(
    output: TaskOutput,
    signal: AbortSignal = this.opts.signal,
  ): Promise<TaskOutput> {
    if (!this.enabled) return output;
    let own: SafetyClassification | undefined;
    if (this.opts.checksOutput) {
      const { media } = output;
      const image: SafetyImage = media.kind === 'buffer' ? media.data : media.path;
      [own] = await this.classify(
        [image],
        signal,
        (_, err) => new Error(`the output does not decode for the safety check: ${err.message}`),
      );
      const blocked = this.judge('output', own);
      this.emit({ target: 'output', taskType: this.opts.taskType, blocked: blocked !== undefined });
      this.logger.log(
        this.opts.log,
        `safety check of the output: unsafe_score ${own.unsafe_score} (threshold ${this.opts.threshold ?? 'unset'})` +
          (blocked ? '; blocked' : ''),
      );
      if (blocked) throw blocked;
    }
    if (!this.model) return output;
    const safety: SafetyMetadata = {
      ...this.model,
      threshold: this.opts.threshold,
      blocked: false,
      ...(own ? { scores: own.scores, unsafe_score: own.unsafe_score } : {}),
      inputs: this.inputs,
    };
    return { ...output, metadata: { ...output.metadata, safety } };
  }

  private async classify(
    images: SafetyImage[],
    signal: AbortSignal,
    undecodable: (index: number, err: UndecodableImageError) => Error,
  ): Promise<SafetyClassification[]> {
    try {
      const { model, results } = await this.classifier.classify(images, signal);
      this.model ??= model;
      return results;
    } catch (err) {
      if (err instanceof UndecodableImageError) throw undecodable(err.index, err);
      throw err;
    }
  }

  /** The error that blocks the task, when the image is above the threshold. */
  private judge(subject: string, result: SafetyClassification): ContentBlockedError | undefined {
    const { threshold } = this.opts;
    if (threshold === null || !(result.unsafe_score > threshold)) return undefined;
    return new ContentBlockedError(subject, result.scores, result.unsafe_score, threshold);
  }
}
