/**
 * A real worker process for fault tests: the WorkerModule with the test task types, its signal
 * handling the same as apps/worker/src/main.ts. Config comes as JSON in WORKER_PROCESS_ENV (given to
 * testConfig, like the in-process harness); every run of a test_sleep or test_busy processor is
 * appended to WORKER_PROCESS_EVIDENCE as `<start|finish> <task id> <pid>` so the test can count runs.
 */
import 'reflect-metadata';
import { appendFileSync } from 'node:fs';
import { Test } from '@nestjs/testing';
import { EXTRA_TASK_DEFINITIONS } from '@app/tasks';
import { createAppLogger } from '@app/observability';
import { testConfig } from '@app/testing';
import { WorkerShutdownService } from '../../src/runtime/worker-shutdown.service';
import { WorkerModule } from '../../src/worker.module';
import { TEST_BUSY_TASK, TestBusyModule } from './test-busy.task';
import {
  TEST_SLEEP_TASK,
  TEST_TIMEOUT_TASK,
  TestProcessorsModule,
  testSleepLog,
} from './test-sleep.task';

async function main(): Promise<void> {
  const config = testConfig(
    JSON.parse(process.env.WORKER_PROCESS_ENV ?? '{}') as Record<string, string>,
  );
  const evidence = process.env.WORKER_PROCESS_EVIDENCE;
  if (evidence) {
    testSleepLog.onRun = (taskId, event) =>
      appendFileSync(evidence, `${event} ${taskId} ${process.pid}\n`);
  }
  const module = await Test.createTestingModule({
    imports: [WorkerModule.register(config), TestProcessorsModule, TestBusyModule],
  })
    .overrideProvider(EXTRA_TASK_DEFINITIONS)
    .useValue([TEST_SLEEP_TASK, TEST_TIMEOUT_TASK, TEST_BUSY_TASK])
    .compile();
  // The worker's own logger (pino, LOG_LEVEL of the test config: warn unless TEST_LOG_LEVEL).
  module.useLogger(createAppLogger(config, 'worker'));
  const app = await module.init();
  app.get(WorkerShutdownService).handleSignals(app);
  process.stdout.write(`WORKER_READY ${process.pid}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`worker process failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
