import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { TaskValidationError } from '../task-errors';
import type { TaskDefinition } from './task-definition';

/**
 * Parses `task_data` with its contract: validates it and returns it with the contract's defaults
 * filled in, the one value the submit (estimate, record), the processor and the Payload document
 * use. Unknown fields are refused (a typo must not be silently ignored); messages name the full
 * path, e.g. `task_data.reference_images.0 must be a URL`.
 */
export function validateTaskData<T extends object>(def: TaskDefinition<T>, data: unknown): T {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new TaskValidationError(['task_data must be an object']);
  }
  const instance = plainToInstance(def.dataClass, data);
  const errors = validateSync(instance, {
    whitelist: true,
    forbidNonWhitelisted: true,
    forbidUnknownValues: true,
  });
  if (errors.length > 0) throw new TaskValidationError(flatten(errors, 'task_data'));
  fillDefaults(instance);
  return instance;
}

/**
 * A contract's defaults are its property initializers. class-transformer builds every object of
 * `task_data` (nested ones through `@Type`) with `new`, so a field left out already holds its
 * default; this fills the fields sent as null (`@IsOptional` lets null through), at any depth.
 */
function fillDefaults(value: unknown): void {
  if (Array.isArray(value)) {
    for (const item of value) fillDefaults(item);
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const fields = value as Record<string, unknown>;
  const ctor = value.constructor as (new () => object) | undefined;
  if (typeof ctor === 'function' && ctor !== Object) {
    for (const [key, initial] of Object.entries(new ctor())) {
      if (initial !== undefined && fields[key] == null) fields[key] = initial;
    }
  }
  for (const field of Object.values(fields)) fillDefaults(field);
}

export function flatten(errors: ValidationError[], path: string): string[] {
  return errors.flatMap((e) => {
    const at = `${path}.${e.property}`;
    // class-validator starts most messages with the property name: widen it to the full path.
    const own = Object.values(e.constraints ?? {}).map((m) => {
      const bare = m.replace(/^property /, '');
      return bare.startsWith(`${e.property} `)
        ? `${at}${bare.slice(e.property.length)}`
        : `${at}: ${m}`;
    });
    return [...own, ...flatten(e.children ?? [], at)];
  });
}
