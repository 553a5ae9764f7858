import { IsOptional } from 'class-validator';
import { TaskValidationError } from '../task-errors';
import { QueueName } from '../queues';
import { inputUrlProblem, IsInputUrl, s3ReferenceProblems } from './input-url.validator';
import type { TaskDefinition } from './task-definition';
import { validateTaskData } from './task-data.validator';

class Data {
  @IsOptional()
  @IsInputUrl()
  style_guide?: string;

  @IsOptional()
  @IsInputUrl({ each: true })
  reference_images?: string[];
}

const DEF: TaskDefinition<Data> = {
  type: 't',
  description: 't',
  queue: QueueName.GpuMedium,
  mediaKind: 'image',
  dataClass: Data,
  estimateDuration: () => 1,
};

function messages(data: object): string[] {
  try {
    validateTaskData(DEF, data);
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(TaskValidationError);
    return (err as TaskValidationError).messages;
  }
}

describe('IsInputUrl', () => {
  it.each([
    'https://example.com/a/b.jpg',
    'http://127.0.0.1:9000/x.png?sig=1',
    // Presigned URLs carry encoded slashes in the query: allowed.
    'https://bucket.r2.dev/projects/p/x.jpg?X-Amz-Credential=AKID%2F20260101%2Fauto%2Fs3%2Faws4_request',
    's3://media/projects/p1/image/t/output.jpg',
    'https://example.com/file.name.with.dots.jpg',
  ])('accepts %s', (url) => {
    expect(inputUrlProblem(url)).toBeUndefined();
    expect(messages({ style_guide: url })).toEqual([]);
  });

  it.each([
    ['https://example.com/a/../b.jpg', /path traversal/],
    ['https://example.com/..', /path traversal/],
    ['https://example.com/a/./b.jpg', /path traversal/],
    ['https://example.com/a/..%2Fb.jpg', /encoded slashes/],
    ['https://example.com/a%2f..%2fetc/passwd', /encoded slashes/],
    ['https://example.com/a/%2e%2e/b.jpg', /encoded dots/],
    ['https://example.com/a/%252e%252e/b.jpg', /encoded dots/],
    ['https://example.com/a%5cb.jpg', /encoded slashes/],
    ['https://example.com\\..\\b.jpg', /backslashes/],
    ['file:///etc/passwd', /http\(s\) URL or an s3/],
    ['/etc/passwd', /http\(s\) URL or an s3/],
    ['ftp://example.com/x.jpg', /http\(s\) URL or an s3/],
    ['s3://media/projects/p1/../p2/x.jpg', /path traversal/],
    ['s3://media/projects/p1/%2e%2e/x.jpg', /encoded dots/],
    ['s3://media//etc/passwd', /absolute key/],
    ['s3://media/projects/p1/a b.jpg', /s3:\/\/bucket\/key/],
    ['s3:/media/x', /s3:\/\/bucket\/key/],
    ['S3://media/x', /s3:\/\/bucket\/key/],
  ])('refuses %s naming the field', (url, why) => {
    expect(inputUrlProblem(url)).toMatch(why);
    const [message] = messages({ style_guide: url });
    expect(message).toMatch(/^task_data\.style_guide /);
    expect(message).toMatch(why);
  });

  it('names the array field and the bad item', () => {
    const [message] = messages({
      reference_images: ['https://example.com/ok.jpg', 'https://example.com/%2e%2e/x.jpg'],
    });
    expect(message).toBe(
      'task_data.reference_images must not contain encoded dots in its path (item 1)',
    );
  });

  it('refuses URLs longer than 2048 characters', () => {
    const [message] = messages({ style_guide: `https://example.com/${'a'.repeat(2048)}` });
    expect(message).toMatch(/^task_data\.style_guide must be shorter than or equal to 2048/);
  });
});

describe('s3ReferenceProblems', () => {
  const data = (refs: string[]) => ({ style_guide: 'https://example.com/x.jpg', nested: { refs } });

  it('accepts references into the project prefix of the configured bucket', () => {
    expect(
      s3ReferenceProblems('p1', data(['s3://media/projects/p1/image/t/output.jpg']), 'media'),
    ).toEqual([]);
  });

  it('refuses another project, another bucket, or no object storage, naming the field', () => {
    expect(s3ReferenceProblems('p1', data(['s3://media/projects/p2/x.jpg']), 'media')).toEqual([
      'task_data.nested.refs[0] must reference a key inside projects/p1/',
    ]);
    expect(
      s3ReferenceProblems('p1', data(['s3://media/projects/p10/x.jpg']), 'media'),
    ).toHaveLength(1);
    expect(s3ReferenceProblems('p1', data(['s3://other/projects/p1/x.jpg']), 'media')).toEqual([
      'task_data.nested.refs[0] must reference the bucket media',
    ]);
    expect(s3ReferenceProblems('p1', data(['s3://media/projects/p1/x.jpg']), null)[0]).toMatch(
      /^task_data\.nested\.refs\[0\]: s3:\/\/ references need object storage/,
    );
  });
});
