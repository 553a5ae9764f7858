import { Writable } from 'node:stream';

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const COLORS: Record<number, string> = { 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
/** Fields shown in the line's head, or noise for a terminal reader. */
const HEAD = new Set(['level', 'time', 'msg', 'context', 'pid', 'hostname', 'app']);

/**
 * LOG_FORMAT=pretty without pino-pretty (not a dependency): reads pino's JSON lines and writes
 * `time LEVEL [context] message key=value …` lines, coloured when the target is a terminal.
 */
export class PrettyLogStream extends Writable {
  constructor(
    private readonly target: NodeJS.WritableStream = process.stdout,
    private readonly colors = (target as { isTTY?: boolean }).isTTY === true,
  ) {
    super({ decodeStrings: false });
  }

  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (e?: Error) => void) {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    const out = text
      .split('\n')
      .filter((line) => line.length > 0)
      .map((line) => formatPrettyLine(line, this.colors))
      .join('\n');
    this.target.write(out + '\n');
    done();
  }
}

export function formatPrettyLine(line: string, colors = false): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = Number(record.level);
  const name = (LEVELS[level] ?? String(record.level)).padEnd(5);
  // pino writes epoch ms by default, ISO strings with stdTimeFunctions.isoTime (ours).
  const at = typeof record.time === 'string' ? Date.parse(record.time) : Number(record.time);
  const time = new Date(Number.isFinite(at) ? at : Date.now()).toISOString().slice(11, 23);
  const context = typeof record.context === 'string' ? `[${record.context}] ` : '';
  // A stack reads better on its own lines than inside a JSON string.
  const err = record.err as { stack?: unknown } | undefined;
  const stack = typeof err?.stack === 'string' ? err.stack : undefined;
  const rest = Object.entries(record)
    .filter(([k]) => !HEAD.has(k) && !(k === 'err' && stack))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  const head = colors && COLORS[level] ? `\u001b[${COLORS[level]}m${name}\u001b[0m` : name;
  const msg = typeof record.msg === 'string' ? record.msg : '';
  return `${time} ${head} ${context}${msg}${rest ? ` ${rest}` : ''}${stack ? `\n${stack}` : ''}`;
}
