import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { AppConfig } from '@app/config';
import { NSFW_MODEL } from '@app/gpu';
import { TaskDefinitions, type TaskDefinition } from '@app/tasks';
import { getProcessorContract, getProcessorModels, type TaskProcessor } from './task-processor';

/**
 * Finds the processors (classes marked @TaskProcessorFor) that DI built and checks at boot that
 * every task type of the queues this worker serves has exactly one.
 */
@Injectable()
export class ProcessorRegistry implements OnModuleInit {
  private readonly logger = new Logger(ProcessorRegistry.name);
  private readonly processors = new Map<string, TaskProcessor>();
  private readonly models = new Map<string, readonly string[]>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly definitions: TaskDefinitions,
    private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const type = wrapper.metatype ? getProcessorContract(wrapper.metatype)?.type : undefined;
      if (!type || !wrapper.instance) continue;
      if (!this.definitions.get(type)) {
        throw new Error(
          `Processor ${wrapper.name} is for unknown task type '${type}': add its contract to TASK_DEFINITIONS in libs/tasks`,
        );
      }
      if (this.processors.has(type)) throw new Error(`Two processors for task type '${type}'`);
      this.processors.set(type, wrapper.instance as TaskProcessor);
      this.models.set(type, getProcessorModels(wrapper.metatype!));
    }
    const missing = this.served().filter((d) => !this.processors.has(d.type));
    if (missing.length > 0) {
      throw new Error(
        `No processor for task type(s) ${missing.map((d) => `'${d.type}'`).join(', ')}: ` +
          'add a module under apps/worker/src/processors/<type>/ with a class marked ' +
          '@TaskProcessorFor(<its contract, e.g. GENERATE_IMAGE_TASK>) and list it in PROCESSOR_MODULES ' +
          '(apps/worker/src/processors/index.ts)',
      );
    }
    this.logger.log(
      `queues ${this.config.worker.queues.join(', ')}; processors: ${[...this.processors.keys()].join(', ')}`,
    );
  }

  /** Task types whose queue this worker consumes. */
  served(): TaskDefinition[] {
    return this.definitions.all().filter((d) => this.config.worker.queues.includes(d.queue));
  }

  /**
   * The models the processors of served task types declared (what the worker preloads), and the
   * safety classifier when a served type makes images: every image type takes `safety_check`,
   * and the runtime runs the classifier for it, not the processor.
   */
  servedModels(): string[] {
    const served = this.served();
    return [
      ...new Set([
        ...served.flatMap((d) => this.models.get(d.type) ?? []),
        ...(served.some((d) => d.mediaKind === 'image') ? [NSFW_MODEL] : []),
      ]),
    ];
  }

  get(type: string): TaskProcessor | undefined {
    return this.processors.get(type);
  }
}
