/**
 * Tile layout and blend weights of the tiled upscaler, as plain arithmetic (no tensors).
 *
 * Tiles along one axis all have the same side (the last is aligned to the end of the image
 * rather than cut short) and overlap their neighbours by at least `overlap` input pixels; starts
 * are spread evenly so the overlaps are about equal. In an overlap, the two tiles' weights ramp
 * linearly against each other (feathering) past a dead margin at each tile edge, where the
 * network saw zero padding instead of the image: no seam, and no edge artefact.
 */

/** Start offsets of tiles of side `tile` covering `length` with overlaps ≥ `overlap`. */
export function tileStarts(length: number, tile: number, overlap: number): number[] {
  if (length <= tile) return [0];
  if (!(tile > overlap && overlap >= 0)) {
    throw new RangeError(`tile side ${tile} must exceed its overlap ${overlap}`);
  }
  const count = Math.ceil((length - overlap) / (tile - overlap));
  const span = length - tile;
  return Array.from({ length: count }, (_, i) => Math.round((i * span) / (count - 1)));
}

/**
 * Weight of each output pixel of tile `index` along one axis (output pixels, `side * scale` of
 * them): 1 inside, ramping to 0 towards a neighbour over their overlap, 0 in the dead margin.
 * Image borders (no neighbour) keep weight 1: nothing else covers them.
 */
export function featherWeights(
  starts: readonly number[],
  index: number,
  side: number,
  scale: number,
): Float32Array {
  const n = side * scale;
  const w = new Float32Array(n).fill(1);
  const start = starts[index];
  const ramp = (overlapInput: number, fromStart: boolean) => {
    const overlap = overlapInput * scale;
    // A quarter of the overlap on each side is dead margin; the middle half is the ramp.
    const dead = Math.floor(overlap / 4);
    const width = Math.max(1, overlap - 2 * dead);
    for (let i = 0; i < overlap && i < n; i++) {
      const v = Math.min(1, Math.max(0, (i + 0.5 - dead) / width));
      const at = fromStart ? i : n - 1 - i;
      w[at] = Math.min(w[at], v);
    }
  };
  if (index > 0) ramp(starts[index - 1] + side - start, true);
  if (index < starts.length - 1) ramp(start + side - starts[index + 1], false);
  return w;
}
