import { parseS3Reference } from './s3-reference';

describe('parseS3Reference', () => {
  it('splits bucket and key', () => {
    expect(parseS3Reference('s3://media/projects/p1/image/t/output.jpg')).toEqual({
      bucket: 'media',
      key: 'projects/p1/image/t/output.jpg',
    });
    expect(parseS3Reference('s3://my.bucket-1/a/file.name.with.dots_and-dashes.png')).toEqual({
      bucket: 'my.bucket-1',
      key: 'a/file.name.with.dots_and-dashes.png',
    });
  });

  it.each([
    // Traversal and empty segments.
    's3://media/projects/p1/../p2/x.jpg',
    's3://media/../x.jpg',
    's3://media/projects/p1/./x.jpg',
    's3://media/projects/p1/..',
    's3://media//etc/passwd',
    's3://media/projects//x.jpg',
    's3://media/projects/p1/',
    's3://media/',
    's3://media',
    // Encoded or unsafe characters in the key.
    's3://media/projects/p1/%2e%2e/x.jpg',
    's3://media/projects/p1%2Fx.jpg',
    's3://media/projects/p1\\..\\x.jpg',
    's3://media/projects/p1/a b.jpg',
    's3://media/projects/p1/x.jpg?versionId=1',
    // Not a bucket name, or not the s3:// scheme as written.
    's3://Media/x.jpg',
    's3://ab/x.jpg',
    's3://-media/x.jpg',
    's3:/media/x.jpg',
    'S3://media/x.jpg',
    'https://media/x.jpg',
  ])('refuses %s', (value) => {
    expect(parseS3Reference(value)).toBeUndefined();
  });
});
