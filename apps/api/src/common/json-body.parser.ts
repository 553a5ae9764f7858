import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Deeper JSON is refused: no request of ours nests this far, and deep input overflows stacks. */
export const MAX_JSON_DEPTH = 32;

const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** How deep the brackets of a JSON text nest (outside strings); stops counting past `limit`. */
export function jsonDepthExceeds(body: Buffer, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    }
  }
  return false;
}

/**
 * The JSON body parser: Fastify's own (secure-json-parse: `__proto__` and `constructor.prototype`
 * keys are refused with 400) behind a nesting-depth check. A 400 is an error with statusCode, which
 * ClientErrorFilter answers in our error shape.
 */
export function jsonBodyParser(
  instance: FastifyInstance,
): (req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void) => void {
  const parse = instance.getDefaultJsonParser('error', 'error');
  return (req, body, done) => {
    if (jsonDepthExceeds(body, MAX_JSON_DEPTH)) {
      done(
        Object.assign(new Error(`JSON body nests deeper than ${MAX_JSON_DEPTH} levels`), {
          statusCode: 400,
        }),
      );
      return;
    }
    // Fastify's default parser is the callback form: it calls `done` and returns nothing.
    void parse(req, body.toString('utf8'), done);
  };
}
