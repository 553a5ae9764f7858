import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { AppConfig, ConfigModule } from '@app/config';
import { NSFW_MODEL } from '@app/gpu';
import {
  EXTRA_TASK_DEFINITIONS,
  GENERATE_IMAGE_TASK,
  PROCESS_AUDIO_TASK,
  QueueName,
  TaskDefinitions,
  type ProcessAudioTaskData,
  type TaskDefinition,
} from '@app/tasks';
import { ProcessorRegistry } from './processor.registry';
import {
  getProcessorContract,
  TaskProcessorFor,
  type RunningTask,
  type TaskOutput,
  type TaskProcessor,
} from './task-processor';

class ProbeTaskData {
  note?: string;
}

const PROBE_TASK: TaskDefinition<ProbeTaskData> = {
  type: 'probe_task',
  description: 'spec only',
  queue: QueueName.CpuIntensive,
  mediaKind: 'audio',
  dataClass: ProbeTaskData,
  estimateDuration: () => 0,
};

const OUTPUT: TaskOutput = {
  media: { kind: 'buffer', data: Buffer.alloc(0), extension: 'bin', contentType: 'x/y' },
  metadata: {},
};

@TaskProcessorFor(PROBE_TASK)
class ProbeProcessor implements TaskProcessor<ProbeTaskData> {
  process(task: RunningTask<ProbeTaskData>): Promise<TaskOutput> {
    return Promise.resolve({ ...OUTPUT, metadata: { note: task.data.note } });
  }
}

// The decorator ties a processor to its contract's data: this one is for process_audio's data,
// marked as generate_image's processor, and must not compile (`npm run typecheck` checks it).
// @ts-expect-error process() takes RunningTask<ProcessAudioTaskData>, not the image contract's.
@TaskProcessorFor(GENERATE_IMAGE_TASK)
class MismatchedProcessor implements TaskProcessor<ProcessAudioTaskData> {
  process(task: RunningTask<ProcessAudioTaskData>): Promise<TaskOutput> {
    return Promise.resolve({ ...OUTPUT, metadata: { text: task.data.text } });
  }
}

/** A stand-in for process_audio, the other type of the cpu_intensive queue. */
@TaskProcessorFor(PROCESS_AUDIO_TASK)
class StubAudioProcessor implements TaskProcessor<ProcessAudioTaskData> {
  process(): Promise<TaskOutput> {
    return Promise.resolve(OUTPUT);
  }
}

@Module({ providers: [ProbeProcessor, StubAudioProcessor] })
class ProbeModule {}

/** An image type of the cpu_intensive queue, so that a test can serve it alone. */
const PROBE_IMAGE_TASK: TaskDefinition<ProbeTaskData> = {
  ...PROBE_TASK,
  type: 'probe_image_task',
  mediaKind: 'image',
};

@TaskProcessorFor(PROBE_IMAGE_TASK, { models: ['esrgan-slim-x2'] })
class ProbeImageProcessor implements TaskProcessor<ProbeTaskData> {
  process(): Promise<TaskOutput> {
    return Promise.resolve(OUTPUT);
  }
}

async function boot(queues: string, withImageType = false): Promise<ProcessorRegistry> {
  const config = AppConfig.fromEnv({ API_KEYS: 'test-key', WORKER_QUEUES: queues });
  const moduleRef = await Test.createTestingModule({
    imports: [ConfigModule.forRoot(config), DiscoveryModule, ProbeModule],
    providers: [
      TaskDefinitions,
      ProcessorRegistry,
      ...(withImageType ? [ProbeImageProcessor] : []),
      {
        provide: EXTRA_TASK_DEFINITIONS,
        useValue: withImageType ? [PROBE_TASK, PROBE_IMAGE_TASK] : [PROBE_TASK],
      },
    ],
  }).compile();
  moduleRef.useLogger(false);
  await moduleRef.init();
  return moduleRef.get(ProcessorRegistry);
}

describe('ProcessorRegistry', () => {
  it('records the contract a processor is marked with', () => {
    expect(getProcessorContract(ProbeProcessor)).toBe(PROBE_TASK);
    expect(getProcessorContract(MismatchedProcessor)).toBe(GENERATE_IMAGE_TASK);
  });

  it("finds each processor under its contract's type", async () => {
    const registry = await boot(QueueName.CpuIntensive);
    expect(registry.get('probe_task')).toBeInstanceOf(ProbeProcessor);
    expect(registry.get('process_audio')).toBeInstanceOf(StubAudioProcessor);
    expect(registry.served().map((d) => d.type)).toEqual(['process_audio', 'probe_task']);
  });

  it('preloads the safety classifier only where a served type makes images', async () => {
    expect((await boot(QueueName.CpuIntensive)).servedModels()).toEqual([]);
    expect((await boot(QueueName.CpuIntensive, true)).servedModels()).toEqual([
      'esrgan-slim-x2',
      NSFW_MODEL,
    ]);
  });

  it('refuses to start when a served type has no processor, naming the fix', async () => {
    // gpu_medium serves generate_image, whose processor this module does not have.
    await expect(boot(`${QueueName.CpuIntensive},${QueueName.GpuMedium}`)).rejects.toThrow(
      /No processor for task type\(s\) 'generate_image'.*@TaskProcessorFor\(.*PROCESSOR_MODULES/,
    );
  });
});
