import { BadRequestException, Injectable, type PipeTransform } from '@nestjs/common';
import { isValidProjectId, PROJECT_ID_RULE } from '@app/projects';

@Injectable()
export class ProjectIdPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (!isValidProjectId(value))
      throw new BadRequestException([`project_id must be ${PROJECT_ID_RULE}`]);
    return value;
  }
}
