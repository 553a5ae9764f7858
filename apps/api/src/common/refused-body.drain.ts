import type { IncomingMessage } from 'node:http';
import type { FastifyInstance } from 'fastify';

/** The longest a refused body is read for, whatever its size: a slow sender gets no more. */
export const REFUSED_BODY_DRAIN_TIMEOUT_MS = 30_000;

export type DrainOutcome = 'ended' | 'over-limit' | 'timed-out' | 'closed';

/**
 * Reads and discards what is left of a request body, until it ends, `maxBytes` more have
 * arrived, `timeoutMs` has passed or the connection closes, whichever comes first.
 */
export function drainRequestBody(
  req: IncomingMessage,
  maxBytes: number,
  timeoutMs: number = REFUSED_BODY_DRAIN_TIMEOUT_MS,
): Promise<DrainOutcome> {
  if (req.readableEnded) return Promise.resolve('ended');
  if (req.destroyed) return Promise.resolve('closed');
  if (maxBytes <= 0) return Promise.resolve('over-limit');
  return new Promise((resolve) => {
    let read = 0;
    const finish = (outcome: DrainOutcome) => {
      clearTimeout(timer);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onClose);
      req.off('error', onClose);
      resolve(outcome);
    };
    const onData = (chunk: Buffer | string) => {
      read += chunk.length;
      if (read > maxBytes) finish('over-limit');
    };
    const onEnd = () => finish('ended');
    const onClose = () => finish('closed');
    const timer = setTimeout(() => finish('timed-out'), timeoutMs);
    timer.unref();
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('close', onClose);
    req.once('error', onClose);
    req.resume();
  });
}

/**
 * Lets a client that sends its whole body before reading see our 413. Fastify refuses a body over
 * the limit before reading it (Content-Length) or part way (chunked) and closes the connection
 * once the answer is written; bytes the client is still sending then arrive at a closed socket,
 * the kernel resets the connection, and the client gets EPIPE instead of the answer. So a 413 is
 * held back (onSend may wait) while the rest of the body is read and thrown away, at most
 * `maxBytes` (API_BODY_DISCARD_LIMIT) and REFUSED_BODY_DRAIN_TIMEOUT_MS; past either bound it is
 * sent at once and the connection closed, as before.
 */
export function registerRefusedBodyDrain(
  fastify: FastifyInstance,
  maxBytes: number,
  timeoutMs: number = REFUSED_BODY_DRAIN_TIMEOUT_MS,
): void {
  fastify.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode === 413) await drainRequestBody(request.raw, maxBytes, timeoutMs);
    return payload;
  });
}
