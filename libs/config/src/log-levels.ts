import type { LogLevel as NestLogLevel } from '@nestjs/common';
import type { LogLevel } from './env.schema';

const ORDER: NestLogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'];

/** Nest's logger levels enabled by LOG_LEVEL (Nest calls `info` `log`). */
export function nestLogLevels(level: LogLevel): NestLogLevel[] {
  const wanted: NestLogLevel = level === 'info' ? 'log' : level;
  return ORDER.slice(0, ORDER.indexOf(wanted) + 1);
}
