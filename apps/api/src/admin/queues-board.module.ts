import { Module, type DynamicModule } from '@nestjs/common';
import { BullModule } from '@nestjs/bullmq';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { BullBoardModule, type BullBoardServerAdapter } from '@bull-board/nestjs';
import { AppConfig } from '@app/config';
import { ALL_QUEUES, bullPrefix } from '@app/tasks';
import { WEBHOOKS_QUEUE } from '@app/webhooks';
import { AdminCredentials } from './admin-credentials';

/** Bull Board's mount point; outside the api/v1 prefix (see setup-app.ts). */
export const QUEUES_BOARD_ROUTE = '/admin/queues';

/**
 * Bull Board's Fastify plugin with an onRequest hook in its own scope: every route of the board
 * (page, JSON API, static files) needs credentials. Nest guards do not see these routes (they are
 * not controllers), so the check lives here.
 */
function guardedAdapter(credentials: AdminCredentials): new () => BullBoardServerAdapter {
  class GuardedFastifyAdapter extends FastifyAdapter {
    override registerPlugin(): ReturnType<FastifyAdapter['registerPlugin']> {
      const plugin = super.registerPlugin();
      return function guardedBoard(fastify, opts, done) {
        fastify.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, next) => {
          const verdict = credentials.check(req.headers);
          if (verdict === 'ok') return next();
          if (verdict === 'forbidden') {
            void reply.code(403).send({
              statusCode: 403,
              error: 'Forbidden',
              message: 'The queue board needs an API key that is not limited to projects',
            });
            return;
          }
          if (credentials.basicAuthEnabled) {
            void reply.header('www-authenticate', 'Basic realm="queues", charset="UTF-8"');
          }
          void reply.code(401).send({
            statusCode: 401,
            error: 'Unauthorized',
            message:
              verdict === 'missing' ? 'API key required in X-API-Key header' : 'Invalid API key',
          });
        });
        plugin.call(fastify, fastify, opts, done);
      };
    }
  }
  // @bull-board/fastify pins its own copy of @bull-board/api: same shapes, distinct declarations.
  return GuardedFastifyAdapter as unknown as new () => BullBoardServerAdapter;
}

/** Every queue the board shows: the three task queues and the webhook deliveries. */
export const BOARD_QUEUES = [...ALL_QUEUES, WEBHOOKS_QUEUE] as const;

/**
 * The queue dashboard at /admin/queues: the task queues and `webhooks`, read-only unless
 * configured. The API registers `webhooks` here only (TasksModule has the task queues): it
 * neither adds to nor consumes it, the board reads it with the same connection and prefix.
 */
@Module({})
export class QueuesBoardModule {
  static register(config: AppConfig): DynamicModule {
    const { readOnly } = config.ops.bullBoard;
    return {
      module: QueuesBoardModule,
      imports: [
        BullBoardModule.forRoot({
          route: QUEUES_BOARD_ROUTE,
          adapter: guardedAdapter(new AdminCredentials(config)),
          boardOptions: { uiConfig: { boardTitle: 'AI movie tasks' } },
          // The Nest middleware slot is unused: auth is the plugin's onRequest hook.
          middleware: (_req: unknown, _res: unknown, next: () => void) => next(),
        }),
        BullModule.registerQueueAsync({
          name: WEBHOOKS_QUEUE,
          inject: [AppConfig],
          useFactory: (c: AppConfig) => ({ prefix: bullPrefix(c.redis.prefix, WEBHOOKS_QUEUE) }),
        }),
        BullBoardModule.forFeature(
          ...BOARD_QUEUES.map((name) => ({
            name,
            adapter: BullMQAdapter,
            options: { readOnlyMode: readOnly },
          })),
        ),
      ],
    };
  }
}
