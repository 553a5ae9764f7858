/**
 * Every key the service owns lives under `<REDIS_PREFIX>:`; parts are joined with ':'.
 * Lua scripts build keys the same way (see task.scripts.ts), so this is the one convention.
 */
export function redisKey(prefix: string, ...parts: Array<string | number>): string {
  return [prefix, ...parts].join(':');
}
