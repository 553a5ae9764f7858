/** The label value that stands for every project past the cap. */
export const OTHER_PROJECTS = 'other';

/**
 * Caps the project_id label's cardinality: the first `limit` distinct projects keep their id, the
 * rest are counted as "other". Each series costs Prometheus memory forever; project ids are
 * unbounded.
 */
export class ProjectLabelLimiter {
  private readonly kept = new Set<string>();

  constructor(private readonly limit: number) {}

  label(projectId: string): string {
    if (this.kept.has(projectId)) return projectId;
    if (this.kept.size < this.limit) {
      this.kept.add(projectId);
      return projectId;
    }
    return OTHER_PROJECTS;
  }
}
