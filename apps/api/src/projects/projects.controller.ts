import { Controller, Get, NotFoundException, Param, Query } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiSecurity,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import { ProjectRepository } from '@app/projects';
import { TaskRepository, type ProjectScope } from '@app/tasks';
import { Scope } from '../auth/principal.decorator';
import { assertProjectInScope } from '../auth/project-scope';
import { ListTasksQuery } from '../tasks/dto/list-tasks.query';
import { ErrorResponseDto, TaskListResponseDto } from '../tasks/dto/task-responses.dto';
import { TaskViews } from '../tasks/task-views';
import { ProjectIdPipe } from './project-id.pipe';
import { ProjectResponseDto } from './project-response.dto';

@ApiTags('projects')
@ApiSecurity('api-key')
@ApiUnauthorizedResponse({ type: ErrorResponseDto })
@Controller('projects')
export class ProjectsController {
  constructor(
    private readonly tasks: TaskRepository,
    private readonly projects: ProjectRepository,
    private readonly views: TaskViews,
  ) {}

  @Get(':project_id')
  @ApiOperation({ summary: 'A project: its task counters, storage prefix and last activity' })
  @ApiOkResponse({ type: ProjectResponseDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'The project id is invalid' })
  @ApiNotFoundResponse({
    type: ErrorResponseDto,
    description:
      'No task was ever submitted to the project, or the API key is limited to other projects',
  })
  async get(
    @Scope() scope: ProjectScope,
    @Param('project_id', ProjectIdPipe) projectId: string,
  ): Promise<ProjectResponseDto> {
    assertProjectInScope(scope, projectId);
    const project = await this.projects.get(projectId);
    if (!project) throw new NotFoundException(`Project ${projectId} not found`);
    return project;
  }

  @Get(':project_id/tasks')
  @ApiOperation({ summary: "A project's tasks, newest first, filtered and paginated" })
  @ApiOkResponse({ type: TaskListResponseDto })
  @ApiBadRequestResponse({ type: ErrorResponseDto, description: 'A query parameter is invalid' })
  @ApiNotFoundResponse({
    type: ErrorResponseDto,
    description: 'The API key is limited to other projects (existence is not revealed)',
  })
  async list(
    @Scope() scope: ProjectScope,
    @Param('project_id', ProjectIdPipe) projectId: string,
    @Query() query: ListTasksQuery,
  ): Promise<TaskListResponseDto> {
    assertProjectInScope(scope, projectId);
    const { tasks, total } = await this.tasks.list(projectId, query);
    return {
      tasks: await Promise.all(tasks.map((t) => this.views.listItem(t))),
      pagination: {
        page: query.page,
        limit: query.limit,
        total,
        total_pages: Math.ceil(total / query.limit),
      },
    };
  }
}
