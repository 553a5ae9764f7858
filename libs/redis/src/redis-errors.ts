/**
 * Errors that say Redis could not do what was asked right now — it refuses writes (maxmemory
 * with noeviction: OOM; a replica after a failover: READONLY), is loading, has no reachable
 * primary, or the connection is gone or too slow — as opposed to a bug or a refusal of ours
 * (a script's own error reply). Such an error is retried later, never recorded as the task's
 * fault, and the API answers it with 503 + Retry-After.
 */
const REFUSING_REPLIES =
  /^(OOM|READONLY|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|NOAUTH|WRONGPASS|NOPERM|EXECABORT.*(OOM|READONLY))\b/;

// ioredis's own words: the client gave up on a command (closed, timed out, out of retries) or
// cannot reach a cluster or sentinel. Bare socket codes (ECONNREFUSED, ...) are left out: they
// come from any peer (an input URL, Payload), and ioredis, retrying for ever, never rejects a
// command with one.
const CONNECTION_MESSAGES =
  /^(Connection is closed|Command timed out|Stream isn't writeable|Reached the max retries per request limit|Failed to refresh slots cache|None of the sentinels are available|All sentinels are unreachable)/;

/** True when `err` means Redis is unavailable or refusing writes (see above). */
export function isRedisUnavailableError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const e = err as Error & { name: string };
  if (e.name === 'MaxRetriesPerRequestError' || e.name === 'ClusterAllFailedError') return true;
  const message = e.message ?? '';
  // ioredis ReplyError: the reply's first word is Redis's error code.
  if (e.name === 'ReplyError' && REFUSING_REPLIES.test(message)) return true;
  // A script whose write was refused: "ERR Error running script ... OOM command not allowed".
  if (/\b(OOM command not allowed|READONLY You can't write)/.test(message)) return true;
  return CONNECTION_MESSAGES.test(message);
}

/** Seconds a client is told to wait when Redis is unavailable. */
export const REDIS_UNAVAILABLE_RETRY_AFTER_SECONDS = 5;
