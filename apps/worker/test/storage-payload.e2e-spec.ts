import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import sharp from 'sharp';
import { TaskRepository } from '@app/tasks';
import {
  runTaskToEnd,
  TEST_S3_CREDENTIALS,
  TestPayloadServer,
  TestS3Server,
  waitFor,
  type HttpResult,
  type StatusSample,
} from '@app/testing';
import { TestService } from '../../api/test/support/service.harness';

const PAYLOAD_KEY = 'payload-test-key';
const PROJECT = 'detective_series_001';

/**
 * Issue 4 end to end: real API + worker, outputs in a real S3-protocol server (s3rver, path
 * style), media registered in a Payload stand-in that parses multipart like Payload does.
 */
describe('object storage and Payload registration', () => {
  const s3 = new TestS3Server('task-media');
  const payload = new TestPayloadServer('media', `users API-Key ${PAYLOAD_KEY}`);
  let service: TestService;
  let client: S3Client;

  beforeAll(async () => {
    await s3.start();
    const payloadUrl = await payload.start();
    service = new TestService({
      env: {
        WORKER_QUEUES: 'gpu_medium',
        ...s3.env('r2'),
        MEDIA_URL_TTL: '900',
        PAYLOAD_API_URL: payloadUrl,
        PAYLOAD_API_KEY: PAYLOAD_KEY,
        PAYLOAD_TIMEOUT_MS: '5000',
      },
    });
    await service.start();
    client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: TEST_S3_CREDENTIALS,
    });
  });

  afterAll(async () => {
    client?.destroy();
    await service?.close();
    await payload.stop();
    await s3.stop();
  });

  async function objectBytes(key: string): Promise<Buffer> {
    const out = await client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
    return Buffer.from(await out.Body!.transformToByteArray());
  }

  const runToEnd = (body: unknown, seen?: StatusSample[]) =>
    runTaskToEnd(service.http, body, { timeoutMs: 90_000, intervalMs: 20, seen });

  it('stores the image under its key, serves a presigned media_url and registers one document', async () => {
    // An s3:// reference inside the project is an input like any http URL.
    const reference = `projects/${PROJECT}/uploads/ref.png`;
    const png = await sharp({
      create: { width: 32, height: 32, channels: 3, background: { r: 180, g: 30, b: 30 } },
    })
      .png()
      .toBuffer();
    await client.send(
      new PutObjectCommand({
        Bucket: s3.bucket,
        Key: reference,
        Body: png,
        ContentType: 'image/png',
      }),
    );

    const taskData = {
      character_description: 'Detective in 1920s noir style',
      reference_images: [`s3://${s3.bucket}/${reference}`],
      width: 256,
      height: 256,
      seed: 11,
    };
    // Registration is held until a poll has seen its step: the step lasts as long as the
    // upload, which on a fast machine is shorter than the polling interval.
    const seen: StatusSample[] = [];
    payload.beforeCreate = () =>
      waitFor(async () => seen.some((s) => s.step === 'registering_media') || undefined, {
        timeoutMs: 60_000,
        what: 'a poll to see registering_media',
      }).then(() => undefined);
    let run: Awaited<ReturnType<typeof runToEnd>>;
    try {
      run = await runToEnd(
        { project_id: PROJECT, task_type: 'generate_image', task_data: taskData },
        seen,
      );
    } finally {
      payload.beforeCreate = undefined;
    }
    const { id, final } = run;
    expect(final.status).toBe('completed');
    expect(seen.map((s) => s.step)).toContain('registering_media');
    const key = `projects/${PROJECT}/image/${id}/output.jpg`;
    expect(s3.writes.filter((k) => k === key)).toHaveLength(1);

    // The object is in the bucket under the exact key, and it is the JPEG we made.
    const stored = await objectBytes(key);
    expect(await sharp(stored).metadata()).toMatchObject({
      format: 'jpeg',
      width: 256,
      height: 256,
    });
    expect(stored.length).toBe(final.result.metadata.file_size);

    // media_url is a presigned GET on the S3 server, downloadable without any key.
    const mediaUrl = new URL(final.result.media_url as string);
    expect(mediaUrl.origin).toBe(s3.endpoint);
    expect(mediaUrl.pathname).toBe(`/${s3.bucket}/${key}`);
    expect(mediaUrl.searchParams.get('X-Amz-Expires')).toBe('900');
    expect(mediaUrl.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    const download = await fetch(mediaUrl);
    expect(download.status).toBe(200);
    expect(Buffer.from(await download.arrayBuffer()).equals(stored)).toBe(true);

    // The listing's result_url comes from the same driver.
    const list = await service.http.get(`/projects/${PROJECT}/tasks`);
    const item = list.body.tasks.find((t: { task_id: string }) => t.task_id === id);
    expect(new URL(item.result_url as string).pathname).toBe(`/${s3.bucket}/${key}`);

    // Exactly one Payload document, with the fields of the issue and the file itself.
    const docs = payload.docs.filter((d) => d.fields.task_id === id);
    expect(docs).toHaveLength(1);
    const [doc] = docs;
    expect(final.result.payload_media_id).toBe(String(doc.id));
    expect(doc.fields).toMatchObject({
      project_id: PROJECT,
      media_type: 'character_design',
      agent_generated: true,
      task_id: id,
      generation_metadata: {
        task_type: 'generate_image',
        task_data: taskData,
        resolution: '256x256',
        format: 'JPEG',
        seed: 11,
        file_size: stored.length,
      },
    });
    expect(new URL(doc.fields.media_url as string).pathname).toBe(`/${s3.bucket}/${key}`);
    expect(doc.file).toMatchObject({ filename: 'output.jpg', mimeType: 'image/jpeg' });
    expect(doc.file.data.equals(stored)).toBe(true);
    expect(payload.requests.every((r) => r.authorization === `users API-Key ${PAYLOAD_KEY}`)).toBe(
      true,
    );
  });

  it('with Payload down the task is retried from registration and completes once it is back', async () => {
    // 4 refusals: the first attempt spends its 3 tries, the second gets one more, then Payload is back.
    payload.downFor = 4;
    const before = payload.requests.length;
    const { id, final } = await runToEnd({
      project_id: PROJECT,
      task_type: 'generate_image',
      task_data: { character_description: 'A tall robot', width: 128, height: 128 },
    });
    expect(final.status).toBe('completed');
    expect(final.error).toBeNull();
    const seen = payload.requests.slice(before).map((r) => `${r.method} ${r.status}`);
    expect(seen.filter((r) => r.endsWith('503'))).toHaveLength(4);
    expect(seen.slice(-2)).toEqual(['GET 200', 'POST 201']);

    const record = await service.worker!.get(TaskRepository, { strict: false }).get(id);
    expect(record?.attempts).toBe(2);
    expect(record?.result).not.toHaveProperty('pending');

    // One document, and the media was generated and stored once.
    const key = `projects/${PROJECT}/image/${id}/output.jpg`;
    expect(payload.docs.filter((d) => d.fields.task_id === id)).toHaveLength(1);
    expect(s3.writes.filter((k) => k === key)).toHaveLength(1);
    expect(final.result.payload_media_id).toBe(
      String(payload.docs.find((d) => d.fields.task_id === id)!.id),
    );
    expect((await fetch(final.result.media_url as string)).status).toBe(200);
  });

  it('a registration Payload refuses fails the task without retry and removes the media', async () => {
    payload.downStatus = 401;
    payload.downFor = Infinity;
    let run: Awaited<ReturnType<typeof runToEnd>>;
    try {
      run = await runToEnd({
        project_id: PROJECT,
        task_type: 'generate_image',
        task_data: { character_description: 'A refused upload', width: 64, height: 64 },
      });
    } finally {
      payload.downFor = 0;
      payload.downStatus = 503;
    }
    const { id, final } = run;
    expect(final.status).toBe('failed');
    expect(final.error).toMatch(/Payload GET \/media answered HTTP 401/);
    expect(final.error).not.toContain(PAYLOAD_KEY);
    expect(final.result).toBeNull();
    const key = `projects/${PROJECT}/image/${id}/output.jpg`;
    expect(s3.writes.filter((k) => k === key)).toHaveLength(1);
    await expect(objectBytes(key)).rejects.toMatchObject({ name: 'NoSuchKey' });
    const record = await service.worker!.get(TaskRepository, { strict: false }).get(id);
    expect(record?.attempts).toBe(1);
    expect(payload.docs.filter((d) => d.fields.task_id === id)).toHaveLength(0);
  });

  describe('path traversal in input references: 400 at submit naming the field', () => {
    const submit = (task_data: Record<string, unknown>): Promise<HttpResult> =>
      service.http.post('/tasks/submit', {
        project_id: PROJECT,
        task_type: 'generate_image',
        task_data: { character_description: 'x', ...task_data },
      });

    it.each<[string, Record<string, unknown>, RegExp]>([
      [
        '../ in an http path',
        { style_guide: 'https://cdn.example.com/a/../../etc/passwd' },
        /task_data\.style_guide must not contain path traversal/,
      ],
      [
        'encoded slash',
        { style_guide: 'https://cdn.example.com/a%2F..%2Fsecret.png' },
        /task_data\.style_guide must not contain encoded slashes/,
      ],
      [
        'encoded dots',
        {
          reference_images: [
            'https://cdn.example.com/ok.png',
            'https://cdn.example.com/%2e%2e/x.png',
          ],
        },
        /task_data\.reference_images must not contain encoded dots in its path \(item 1\)/,
      ],
      [
        'absolute path',
        { style_guide: '/etc/passwd' },
        /task_data\.style_guide must be an http\(s\) URL or an s3/,
      ],
      [
        'file URL',
        { style_guide: 'file:///etc/passwd' },
        /task_data\.style_guide must be an http\(s\) URL or an s3/,
      ],
      [
        'absolute s3 key',
        { style_guide: 's3://task-media//etc/passwd' },
        /task_data\.style_guide must not use an absolute key/,
      ],
      [
        's3 key with ..',
        { style_guide: `s3://task-media/projects/${PROJECT}/../other/x.png` },
        /task_data\.style_guide must not contain path traversal/,
      ],
      [
        'backslashes',
        { style_guide: 'https://cdn.example.com\\..\\x.png' },
        /task_data\.style_guide must not contain backslashes/,
      ],
      [
        'another project',
        { reference_images: ['s3://task-media/projects/other_project/image/t/output.jpg'] },
        new RegExp(
          `task_data\\.reference_images\\[0\\] must reference a key inside projects/${PROJECT}/`,
        ),
      ],
      [
        'a prefix-sharing project',
        { style_guide: `s3://task-media/projects/${PROJECT}x/a.png` },
        /task_data\.style_guide must reference a key inside/,
      ],
      [
        'another bucket',
        { style_guide: `s3://other-bucket/projects/${PROJECT}/a.png` },
        /task_data\.style_guide must reference the bucket task-media/,
      ],
    ])('%s', async (_name, data, message) => {
      const before = (await service.http.get(`/projects/${PROJECT}/tasks?limit=100`)).body
        .pagination.total;
      const res = await submit(data);
      expect(res.status).toBe(400);
      expect([res.body.message].flat().join('\n')).toMatch(message);
      // Refused before anything was recorded or queued.
      const after = (await service.http.get(`/projects/${PROJECT}/tasks?limit=100`)).body.pagination
        .total;
      expect(after).toBe(before);
    });
  });
});

describe('object storage without Payload', () => {
  const s3 = new TestS3Server('plain-media');
  let service: TestService;

  beforeAll(async () => {
    await s3.start();
    service = new TestService({ env: { WORKER_QUEUES: 'gpu_medium', ...s3.env('s3') } });
    await service.start();
  });
  afterAll(async () => {
    await service?.close();
    await s3.stop();
  });

  it('skips registration: payload_media_id is null, the media is in the bucket', async () => {
    const submitted = await service.http.post('/tasks/submit', {
      project_id: 'plain',
      task_type: 'generate_image',
      task_data: {
        character_description: 'A lighthouse keeper',
        width: 64,
        height: 64,
        format: 'png',
      },
    });
    const id = submitted.body.task_id as string;
    const final = await waitFor(async () => {
      const s = (await service.http.get(`/tasks/${id}/status`)).body;
      return ['completed', 'failed'].includes(s.status) ? s : undefined;
    });
    expect(final.status).toBe('completed');
    expect(final.result.payload_media_id).toBeNull();
    expect(s3.writes).toEqual([`projects/plain/image/${id}/output.png`]);
    const media = await fetch(final.result.media_url as string);
    expect(media.status).toBe(200);
    expect(await sharp(Buffer.from(await media.arrayBuffer())).metadata()).toMatchObject({
      format: 'png',
      width: 64,
    });
  });
});
