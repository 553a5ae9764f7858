/** Seed 001: project ids match ^[a-zA-Z0-9_-]+$; we also bound the length (keys, paths, labels). */
export const PROJECT_ID_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
export const PROJECT_ID_RULE = 'letters, digits, _ and - only, 1 to 64 characters';

export function isValidProjectId(value: unknown): value is string {
  return typeof value === 'string' && PROJECT_ID_PATTERN.test(value);
}
