import { rm } from 'node:fs/promises';
import { Injectable, Logger } from '@nestjs/common';
import { PayloadClient, payloadMediaType } from '@app/payload';
import { isKeyInProject, mediaOutputKey } from '@app/projects';
import { StorageDriver, type StoredObject } from '@app/storage';
import type { TaskDefinition, TaskRecord, TaskResultRecord } from '@app/tasks';
import type { TaskOutput } from './task-processor';

/** How long the question "does a Payload document point at this media?" may take. */
const DISCARD_LOOKUP_TIMEOUT_MS = 30_000;

/**
 * A run's output on its way out: stored under the task's key, registered in Payload, and
 * removed again when the run ends without it — but never while a Payload document may point at it.
 */
@Injectable()
export class RunOutput {
  private readonly logger = new Logger(RunOutput.name);

  constructor(
    private readonly storage: StorageDriver,
    private readonly payload: PayloadClient,
  ) {}

  get registers(): boolean {
    return this.payload.enabled;
  }

  /** Moves the processor's media into storage; a temp file is removed whatever happens. */
  async store(task: TaskRecord, def: TaskDefinition, output: TaskOutput): Promise<StoredObject> {
    const { media } = output;
    const key = mediaOutputKey(task.project_id, def.mediaKind, task.task_id, media.extension);
    try {
      return await this.storage.put(
        key,
        media.kind === 'buffer'
          ? { kind: 'buffer', data: media.data }
          : { kind: 'file', path: media.path },
        media.contentType,
      );
    } finally {
      await removeTempOutput(output);
    }
  }

  /**
   * The result a previous run stored but could not register in Payload, when its object is still
   * there; undefined means the media must be made (again).
   */
  async resumable(task: TaskRecord): Promise<TaskResultRecord | undefined> {
    const result = task.result;
    if (result?.pending !== 'payload' || !isKeyInProject(task.project_id, result.media_key)) {
      return undefined;
    }
    const object = await this.storage.get(result.media_key);
    if (!object) return undefined;
    object.stream.destroy();
    return result;
  }

  /** Registers the stored media in Payload; returns the document id (the existing one on a retry). */
  async register(
    task: TaskRecord,
    def: TaskDefinition,
    data: object,
    result: TaskResultRecord,
    signal: AbortSignal,
  ): Promise<string> {
    const key = result.media_key;
    const started = Date.now();
    const { id, created } = await this.payload.registerMedia(
      {
        taskId: task.task_id,
        projectId: task.project_id,
        mediaType: payloadMediaType(def.mediaKind),
        filename: key.slice(key.lastIndexOf('/') + 1),
        contentType: result.content_type,
        open: async () => {
          const object = await this.storage.get(key);
          // Not a Payload error: the next attempt finds no object and makes the media again.
          if (!object) throw new Error(`stored media ${key} disappeared before registration`);
          return object.stream;
        },
        generationMetadata: { task_type: task.task_type, task_data: data, ...result.metadata },
        mediaUrl: await this.storage.url(key),
      },
      signal,
    );
    this.logger.log(
      { task_id: task.task_id, project_id: task.project_id, payload_media_id: id },
      `${created ? 'registered' : 'already registered'} in Payload (${Date.now() - started} ms)`,
    );
    return id;
  }

  /**
   * Removes stored media the task will not keep. When registration may have begun
   * (`mayBeRegistered`), Payload is asked first: media a document points to stays, and so does
   * media whose document cannot be looked up now.
   */
  async discard(task: TaskRecord, key: string, mayBeRegistered: boolean): Promise<boolean> {
    const fields = { task_id: task.task_id, project_id: task.project_id };
    if (mayBeRegistered) {
      // A signal of its own: the run's is aborted already when it was cancelled.
      const registered = await this.payload.mediaIsRegistered(
        task.task_id,
        AbortSignal.timeout(DISCARD_LOOKUP_TIMEOUT_MS),
      );
      if (registered !== false) {
        this.logger.log(
          fields,
          registered === true
            ? `kept ${key}: a Payload document points at it`
            : `kept ${key}: Payload could not say whether a document points at it`,
        );
        return false;
      }
    }
    try {
      await this.storage.delete(key);
      return true;
    } catch (err) {
      this.logger.warn(fields, `could not delete ${key}: ${errorText(err)}`);
      return false;
    }
  }
}

/** Removes a processor's temp output file (a buffer output has none). */
export async function removeTempOutput(output: TaskOutput): Promise<void> {
  if (output.media.kind === 'file') await rm(output.media.path, { force: true });
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
