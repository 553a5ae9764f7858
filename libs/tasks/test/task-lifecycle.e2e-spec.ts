import { Test, type TestingModule } from '@nestjs/testing';
import { ConfigModule } from '@app/config';
import { RedisModule } from '@app/redis';
import { cleanRedis, testConfig } from '@app/testing';
import { TaskQueueService } from '../src/queue/task-queue.service';
import { TaskRepository } from '../src/records/task.repository';
import { TaskLifecycleService } from '../src/task-lifecycle.service';
import { TasksModule } from '../src/tasks.module';

/** The lifecycle against the real Redis, with a queue producer that can be made to fail. */
describe('TaskLifecycleService', () => {
  const config = testConfig();
  let module: TestingModule;
  let lifecycle: TaskLifecycleService;
  let tasks: TaskRepository;
  const queue = {
    enqueue: jest.fn<Promise<void>, unknown[]>(),
    reserve: jest.fn(() => Promise.resolve(1)),
    remove: jest.fn(() => Promise.resolve(true)),
  };

  beforeAll(async () => {
    module = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), RedisModule, TasksModule],
    })
      .overrideProvider(TaskQueueService)
      .useValue(queue)
      .compile();
    await module.init();
    lifecycle = module.get(TaskLifecycleService);
    tasks = module.get(TaskRepository);
  });

  afterAll(async () => {
    await module.close();
    await cleanRedis(config);
  });

  const submit = () =>
    lifecycle.submit({
      project_id: 'lifecycle',
      task_type: 'generate_image',
      task_data: { character_description: 'A lighthouse keeper' },
      priority: 2,
    });

  it('fails a task whose job could not be queued, so it can be retried', async () => {
    queue.enqueue.mockRejectedValueOnce(new Error('READONLY You cannot write against a replica'));
    await expect(submit()).rejects.toThrow('READONLY');
    const { tasks: listed } = await tasks.list('lifecycle', { page: 1, limit: 10 });
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({
      status: 'failed',
      error: 'could not be queued: READONLY You cannot write against a replica',
    });
    expect(listed[0].completed_at).toEqual(expect.any(String));

    queue.enqueue.mockResolvedValueOnce(undefined);
    const retried = await lifecycle.retry(null, listed[0].task_id);
    expect(retried.status).toBe('queued');
    expect(queue.enqueue).toHaveBeenLastCalledWith(
      'gpu_medium',
      'generate_image',
      { task_id: listed[0].task_id, project_id: 'lifecycle' },
      `${listed[0].task_id}_r1`,
      2,
    );
  });
});
