import {
  Controller,
  ForbiddenException,
  Get,
  NotFoundException,
  Param,
  Query,
  Res,
  StreamableFile,
} from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { isKeyInProject } from '@app/projects';
import { LocalStorageDriver, StorageDriver } from '@app/storage';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/public.decorator';

/**
 * Serves task outputs of the local storage driver. URLs are signed by the driver (expiring
 * HMAC), like presigned S3 URLs, so players and browsers can open them without the API key.
 */
@ApiExcludeController()
@Public()
@Controller('media')
export class MediaController {
  constructor(
    private readonly storage: StorageDriver,
    private readonly local: LocalStorageDriver,
  ) {}

  @Get('projects/:project_id/:kind/:task_id/:file')
  async get(
    @Param('project_id') projectId: string,
    @Param('kind') kind: string,
    @Param('task_id') taskId: string,
    @Param('file') file: string,
    @Query('expires') expires: string,
    @Query('signature') signature: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<StreamableFile> {
    const key = `projects/${projectId}/${kind}/${taskId}/${file}`;
    if (this.storage !== this.local || !isKeyInProject(projectId, key))
      throw new NotFoundException();
    if (!this.local.verify(key, Number(expires), String(signature ?? ''))) {
      throw new ForbiddenException('Media URL signature is invalid or expired');
    }
    const object = await this.local.get(key);
    if (!object) throw new NotFoundException();
    void reply.header('Cache-Control', 'private, max-age=3600');
    return new StreamableFile(object.stream, { type: object.contentType, length: object.size });
  }
}
