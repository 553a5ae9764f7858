import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * The folder of the models this repository ships (libs/gpu/models), found by walking up from
 * this file: it is the same from the sources (ts-node, jest) and from the webpack bundle in dist/.
 * A Docker image copies the folder next to dist/ (docker/worker.Dockerfile).
 */
export function bundledModelsDir(start = __dirname): string | undefined {
  for (let dir = start; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'libs', 'gpu', 'models');
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
