import { QueueName, type TaskDefinition } from '@app/tasks';
import { TestService } from '../../api/test/support/service.harness';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
} from './support/test-sleep.task';

const ORPHAN: TaskDefinition<object> = {
  ...(TEST_SLEEP_TASK as TaskDefinition<any>),
  type: 'orphan_type',
  queue: QueueName.GpuHeavy,
};

describe('worker boot', () => {
  it('refuses to start when a served task type has no processor, naming the fix', async () => {
    const service = new TestService({ worker: false, extraDefinitions: [ORPHAN] });
    await service.start();
    try {
      await expect(service.startWorker()).rejects.toThrow(
        /No processor for task type\(s\) 'orphan_type'.*PROCESSOR_MODULES/,
      );
    } finally {
      await service.close();
    }
  });

  it('starts when the type’s queue is not served by this worker', async () => {
    const service = new TestService({
      worker: false,
      extraDefinitions: [ORPHAN, TEST_SLEEP_TASK, TEST_TIMEOUT_TASK],
      extraWorkerModules: [TestProcessorsModule],
      env: { WORKER_QUEUES: 'cpu_intensive,gpu_medium' },
    });
    await service.start();
    try {
      await expect(service.startWorker()).resolves.toBeDefined();
    } finally {
      await service.close();
    }
  });
});
