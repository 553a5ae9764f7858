import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import { TaskValidationError } from '../task-errors';
import type { TaskDefinition } from './task-definition';

/**
 * Validates `task_data` against its contract. Unknown fields are refused (a typo must not be
 * silently ignored); messages name the full path, e.g. `task_data.reference_images.0 must be a URL`.
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
  return instance;
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
