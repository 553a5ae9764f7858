import { applyDecorators } from '@nestjs/common';
import { isURL, MaxLength, ValidateBy, type ValidationArguments } from 'class-validator';
import { isKeyInProject, parseS3Reference } from '@app/projects';

/** Scheme, authority and path of an http(s) URL as written (before any normalisation). */
const HTTP_PARTS = /^https?:\/\/[^/?#]*([^?#]*)/i;

/**
 * Why `value` is not an acceptable input URL, or undefined when it is. Checked on the string as
 * written: `new URL()` would resolve `..` and decode nothing, hiding the attempt from later checks.
 * Only the path is checked for encoded separators, because presigned URLs legitimately carry
 * `%2F` in their query (X-Amz-Credential).
 */
export function inputUrlProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be an http(s) URL or an s3://bucket/key reference';
  if (value.includes('\\')) return 'must not contain backslashes';
  if (/^s3:/i.test(value)) {
    if (!value.startsWith('s3://')) return 'must be an s3://bucket/key reference';
    const pathPart = value.slice(5).replace(/^[^/]*/, '');
    const traversal = pathProblem(pathPart);
    if (traversal) return traversal;
    if (pathPart.startsWith('//')) return 'must not use an absolute key (s3://bucket//...)';
    if (!parseS3Reference(value)) {
      return 'must be an s3://bucket/key reference (key of letters, digits, _ . - and /)';
    }
    return undefined;
  }
  if (!isURL(value, { protocols: ['http', 'https'], require_protocol: true, require_tld: false })) {
    return 'must be an http(s) URL or an s3://bucket/key reference';
  }
  const pathPart = HTTP_PARTS.exec(value)?.[1] ?? '';
  return pathProblem(pathPart);
}

function pathProblem(pathPart: string): string | undefined {
  if (/%(25)*(2f|5c)/i.test(pathPart)) return 'must not contain encoded slashes in its path';
  if (/%(25)*2e/i.test(pathPart)) return 'must not contain encoded dots in its path';
  if (pathPart.split('/').some((p) => p === '..' || p === '.')) {
    return 'must not contain path traversal (. or .. segments)';
  }
  return undefined;
}

/**
 * A URL of a task input (storyboard frame, reference image, voice profile ...): http(s), or an
 * `s3://bucket/key` reference into the service's bucket, at most 2048 characters, no path
 * traversal. Every contract uses this one rule. The project-prefix check of s3:// keys needs the
 * task's project, so it happens at submit (TaskLifecycleService) and again when the input is read.
 */
export function IsInputUrl(options: { each?: boolean } = {}): PropertyDecorator {
  return applyDecorators(
    ValidateBy(
      {
        name: 'isInputUrl',
        validator: {
          validate: (value: unknown) => inputUrlProblem(value) === undefined,
          defaultMessage: (args?: ValidationArguments) => {
            // With `each`, class-validator hands the whole array here: name the first bad item.
            const values: unknown[] =
              options.each && Array.isArray(args?.value) ? args.value : [args?.value];
            const index = values.findIndex((v) => inputUrlProblem(v) !== undefined);
            const problem = inputUrlProblem(values[Math.max(index, 0)]);
            const at = options.each && Array.isArray(args?.value) ? ` (item ${index})` : '';
            return `${args?.property ?? 'value'} ${problem ?? 'must be an input URL'}${at}`;
          },
        },
      },
      { each: options.each },
    ),
    MaxLength(2048, { each: options.each }),
  );
}

/**
 * Problems of the `s3://` references in already validated `task_data`: each must point into
 * `bucket` (null: no object storage configured) and inside the project's own prefix. Messages
 * name the field, e.g. `task_data.reference_images[1] ...`.
 */
export function s3ReferenceProblems(
  projectId: string,
  data: unknown,
  bucket: string | null,
  path = 'task_data',
): string[] {
  if (typeof data === 'string') {
    if (!data.startsWith('s3://')) return [];
    const ref = parseS3Reference(data);
    if (!ref) return [`${path} must be an s3://bucket/key reference`];
    if (bucket === null) {
      return [`${path}: s3:// references need object storage (STORAGE_DRIVER=r2 or s3)`];
    }
    if (ref.bucket !== bucket) return [`${path} must reference the bucket ${bucket}`];
    if (!isKeyInProject(projectId, ref.key)) {
      return [`${path} must reference a key inside projects/${projectId}/`];
    }
    return [];
  }
  if (Array.isArray(data)) {
    return data.flatMap((v, i) => s3ReferenceProblems(projectId, v, bucket, `${path}[${i}]`));
  }
  if (data !== null && typeof data === 'object') {
    return Object.entries(data).flatMap(([k, v]) =>
      s3ReferenceProblems(projectId, v, bucket, `${path}.${k}`),
    );
  }
  return [];
}

/** Every http(s) URL among the string values of already validated `task_data`, with its field. */
export function httpUrlsIn(
  data: unknown,
  path = 'task_data',
  found: Array<{ field: string; url: string }> = [],
): Array<{ field: string; url: string }> {
  if (typeof data === 'string') {
    if (/^https?:\/\//i.test(data)) found.push({ field: path, url: data });
  } else if (Array.isArray(data)) {
    data.forEach((v, i) => httpUrlsIn(v, `${path}[${i}]`, found));
  } else if (data !== null && typeof data === 'object') {
    for (const [k, v] of Object.entries(data)) httpUrlsIn(v, `${path}.${k}`, found);
  }
  return found;
}
