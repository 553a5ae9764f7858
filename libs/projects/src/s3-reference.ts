/** `s3://bucket/key`: bucket per S3 naming rules (3–63 of a-z 0-9 . -), then the key. */
const S3_REF = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\/(.+)$/;
/** One segment of a key: safe characters only (no %, no backslash, no space). */
const S3_KEY_PART = /^[A-Za-z0-9_.-]+$/;

/** An object in the service's own storage, as a task input names it. */
export interface S3Reference {
  bucket: string;
  key: string;
}

/**
 * Splits `s3://bucket/key`; undefined when it is not a well-formed reference. The key must be
 * non-empty segments of safe characters: no `.` or `..` segment, no empty segment (so no
 * leading, doubled or trailing `/`), nothing encoded. The one parser of `s3://` references: the
 * submit-time rule (IsInputUrl), the project check at submit and the input fetcher all use it.
 */
export function parseS3Reference(value: string): S3Reference | undefined {
  const m = S3_REF.exec(value);
  if (!m) return undefined;
  const [, bucket, key] = m;
  const parts = key.split('/');
  if (parts.some((p) => !S3_KEY_PART.test(p) || p === '.' || p === '..')) return undefined;
  return { bucket, key };
}
