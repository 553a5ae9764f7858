import type { SafetyScores } from './safety.classifier';

/**
 * An image of a task that asked for `safety_check` scored above SAFETY_BLOCK_THRESHOLD: the task
 * fails with the error class `content_blocked`, never retried (the same image scores the same),
 * and its output is neither stored nor registered.
 */
export class ContentBlockedError extends Error {
  override readonly name = 'ContentBlockedError';

  constructor(
    /** `output`, or the task_data field of the input image (e.g. `task_data.style_guide`). */
    readonly subject: string,
    readonly scores: SafetyScores,
    readonly unsafeScore: number,
    readonly threshold: number,
  ) {
    const what = subject === 'output' ? 'output image' : `input image ${subject}`;
    super(
      `content blocked: ${what} has unsafe_score ${unsafeScore} (Porn ${scores.Porn} + ` +
        `Hentai ${scores.Hentai} + Sexy ${scores.Sexy}), above SAFETY_BLOCK_THRESHOLD ` +
        `${threshold}; ${subject === 'output' ? 'the output was not stored' : 'the task was not processed'}`,
    );
  }
}
