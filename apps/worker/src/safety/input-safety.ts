/** An input image a task fetched, named by the task_data field it came from. */
export interface SafetyInputImage {
  /** e.g. `task_data.reference_images[1]` */
  field: string;
  /** The encoded image, as fetched. */
  data: Buffer;
}

/**
 * What a processor (and the InputFetcher, through its `safety` option) sees of the run's safety
 * check: a no-op unless the task asked for `safety_check`. The scores end up in
 * `result.metadata.safety.inputs`; an input above SAFETY_BLOCK_THRESHOLD throws
 * ContentBlockedError and the task fails with `content_blocked`.
 */
export interface InputSafety {
  /** The task asked for `safety_check: true`. */
  readonly enabled: boolean;
  /** Classifies the images in one batch (nothing when not enabled). */
  checkInputs(images: readonly SafetyInputImage[], signal?: AbortSignal): Promise<void>;
}
