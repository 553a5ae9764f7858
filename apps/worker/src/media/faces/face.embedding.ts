import { createHash } from 'node:crypto';

/** Decimals the embedding keeps in its digest: identical inputs give identical digests. */
const DIGEST_DECIMALS = 4;

/** Cosine similarity of two embeddings, in -1..1 (0 when either is all zeros). */
export function cosineSimilarity(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) {
    throw new Error(`embeddings of different lengths (${a.length} and ${b.length})`);
  }
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  if (na === 0 || nb === 0) return 0;
  return dot / Math.sqrt(na * nb);
}

/**
 * sha256 (hex) of the embedding's values rounded to 4 decimals, comma-joined: names one
 * embedding without shipping its 1024 floats. Equal digests mean the same face crop gave the
 * same vector; similar faces have unrelated digests (compare with cosineSimilarity).
 */
export function embeddingDigest(embedding: readonly number[]): string {
  const text = embedding.map((v) => v.toFixed(DIGEST_DECIMALS)).join(',');
  return createHash('sha256').update(text).digest('hex');
}
