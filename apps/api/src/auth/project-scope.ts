import { NotFoundException } from '@nestjs/common';
import type { ProjectScope } from '@app/tasks';

/**
 * Refuses a project outside the key's scope with the very 404 an unknown project gets, so a
 * scoped key learns nothing about which other projects exist.
 */
export function assertProjectInScope(scope: ProjectScope, projectId: string): void {
  if (scope && !scope.includes(projectId))
    throw new NotFoundException(`Project ${projectId} not found`);
}
