/**
 * Task log lines name their task as `task_id=<id> project_id=<id>` in the message (the runner's
 * convention); this lifts both into fields of the JSON record, so that log queries can filter on
 * them without parsing messages. Fields given explicitly win.
 */
// Ids are [A-Za-z0-9_-] (project ids) or UUIDs: punctuation after one ends it ("project_id=p:").
const TASK_FIELD = /\b(task_id|project_id)=([A-Za-z0-9_-]+)/g;

export function taskFieldsOf(message: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [, key, value] of message.matchAll(TASK_FIELD)) fields[key] ??= value;
  return fields;
}

/** pino `hooks.logMethod`: adds the fields to the merging object of a `(obj, msg)` call. */
export function liftTaskFields(
  this: unknown,
  args: unknown[],
  method: (...args: unknown[]) => void,
): void {
  const [first, second] = args;
  const message = typeof first === 'string' ? first : typeof second === 'string' ? second : '';
  if (!message.includes('_id=')) return method.apply(this, args);
  const fields = taskFieldsOf(message);
  if (Object.keys(fields).length === 0) return method.apply(this, args);
  if (typeof first === 'string') return method.apply(this, [fields, ...args]);
  const merged =
    first instanceof Error ? { err: first, ...fields } : { ...fields, ...(first as object) };
  return method.apply(this, [merged, ...args.slice(1)]);
}
