import { Controller, Get } from '@nestjs/common';
import {
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import {
  ModelCatalogRepository,
  WorkerStatusRepository,
  type PublishedModelVersion,
} from '@app/workers';
import { ErrorResponseDto } from '../tasks/dto/task-responses.dto';
import type { ModelDto, ModelHolderDto, ModelsResponseDto, ModelVersionDto } from './models.dto';
import { ModelsResponseDto as ModelsResponseSchema } from './models.dto';

/**
 * The model repository as the workers see it: the API loads no model itself (it has no tfjs); it
 * merges the catalogs live workers published at boot with the model states of their heartbeats.
 */
@ApiTags('models')
@ApiSecurity('api-key')
@ApiUnauthorizedResponse({ type: ErrorResponseDto })
@Controller('models')
export class ModelsController {
  constructor(
    private readonly workers: WorkerStatusRepository,
    private readonly catalogs: ModelCatalogRepository,
  ) {}

  @Get()
  @ApiOperation({
    summary: 'Models, their versions, and which workers hold them (load and warm-up times)',
    description:
      'Lists what the sources of live workers offer (MODELS_DIR, object storage models/, the ' +
      'models shipped with the service, npm packages), newest version first. Empty while no ' +
      'worker runs.',
  })
  @ApiOkResponse({ type: ModelsResponseSchema })
  async list(): Promise<ModelsResponseDto> {
    const live = (await this.workers.list()).filter((w) => w.status !== 'offline');
    const catalogs = await this.catalogs.read(live.map((w) => w.worker_id));
    const models = new Map<string, Map<string, ModelVersionDto>>();
    for (const catalog of catalogs) {
      for (const model of catalog.models) {
        const versions = models.get(model.name) ?? new Map<string, ModelVersionDto>();
        for (const v of model.versions) {
          if (!versions.has(v.version)) versions.set(v.version, { ...pick(v), workers: [] });
        }
        models.set(model.name, versions);
      }
    }
    for (const w of live) {
      for (const m of w.models) {
        const versions = models.get(m.name);
        // A load that failed before its version was known: shown on the newest version.
        const target = m.version ? versions?.get(m.version) : versions?.values().next().value;
        if (!target) continue;
        const holder: ModelHolderDto = { worker_id: w.worker_id, state: m.state };
        for (const k of [
          'backend',
          'bytes',
          'load_ms',
          'warmup_ms',
          'loaded_at',
          'inferences',
          'error',
        ] as const) {
          if (m[k] !== undefined) (holder as unknown as Record<string, unknown>)[k] = m[k];
        }
        target.workers.push(holder);
      }
    }
    const out: ModelDto[] = [...models.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, versions]) => ({ name, versions: [...versions.values()] }));
    return { models: out, workers: catalogs.map((c) => c.worker_id) };
  }
}

function pick(v: PublishedModelVersion): Omit<ModelVersionDto, 'workers'> {
  return {
    version: v.version,
    format: v.format,
    source: v.source,
    location: v.location,
    description: v.description,
    license: v.license,
    origin: v.origin,
    inputs: v.inputs,
    outputs: v.outputs,
    preferred_batch_sizes: v.preferred_batch_sizes,
    memory_bytes: v.memory_bytes,
  } as Omit<ModelVersionDto, 'workers'>;
}
