import type { MediaKind } from './media-kind';
import { isValidProjectId } from './project-id';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const EXTENSION = /^[a-z0-9]{1,8}$/;

/** Every object of a project lives below this prefix (seed 001 "Cloudflare R2 Organization"). */
export function projectStoragePrefix(projectId: string): string {
  if (!isValidProjectId(projectId))
    throw new Error(`invalid project id for storage: ${String(projectId)}`);
  return `projects/${projectId}/`;
}

/**
 * `projects/{project_id}/{kind}/{task_id}/output.{ext}`. Every part is checked, so no user string
 * reaches a key unvalidated and a key never leaves its project's prefix.
 */
export function mediaOutputKey(
  projectId: string,
  kind: MediaKind,
  taskId: string,
  extension: string,
): string {
  if (!UUID.test(taskId)) throw new Error(`invalid task id for storage: ${taskId}`);
  if (!EXTENSION.test(extension)) throw new Error(`invalid extension for storage: ${extension}`);
  return `${projectStoragePrefix(projectId)}${kind}/${taskId}/output.${extension}`;
}

/** True when `key` is a well-formed key inside the project's prefix (no `..`, no empty parts). */
export function isKeyInProject(projectId: string, key: string): boolean {
  if (!isValidProjectId(projectId)) return false;
  const prefix = projectStoragePrefix(projectId);
  if (!key.startsWith(prefix)) return false;
  const parts = key.split('/');
  return parts.every((p) => p.length > 0 && p !== '.' && p !== '..' && /^[A-Za-z0-9_.-]+$/.test(p));
}
