/** Frames in a batch are capped at this many, however small the frames. */
const MAX_BATCH_FRAMES = 12;

/**
 * How many `width`×`height` frames make a batch of at most `batchPixels` output pixels: at least
 * one, at most MAX_BATCH_FRAMES. Batches bound the memory a render holds and how long it takes
 * to see a cancel.
 */
export function framesPerBatch(width: number, height: number, batchPixels: number): number {
  return Math.max(1, Math.min(MAX_BATCH_FRAMES, Math.floor(batchPixels / (width * height))));
}
