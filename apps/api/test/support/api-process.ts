/**
 * The API as main.ts starts it (ApiModule, the Fastify adapter, prefix, validation, Swagger),
 * in a process of its own, listening on a free loopback port: once it listens, it prints every
 * module file the process has loaded (`require.cache`) as one JSON line and exits. Config comes
 * as JSON in API_PROCESS_ENV (given to testConfig). With API_PROCESS_REQUIRE set, it also loads
 * that file first (a test's control that the listing sees what a module pulls in).
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { cleanRedis, testConfig } from '@app/testing';
import { ApiModule } from '../../src/api.module';
import { createApiAdapter, setupApp } from '../../src/setup-app';

async function main(): Promise<void> {
  const extra = process.env.API_PROCESS_REQUIRE;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (extra) require(extra);
  const config = testConfig(
    JSON.parse(process.env.API_PROCESS_ENV ?? '{}') as Record<string, string>,
  );
  const app = await NestFactory.create<NestFastifyApplication>(
    ApiModule.register(config),
    createApiAdapter(config),
    { logger: false },
  );
  setupApp(app, config);
  await app.listen(0, '127.0.0.1');
  const loaded = Object.keys(require.cache);
  await app.close();
  await cleanRedis(config);
  process.stdout.write(`${JSON.stringify({ loaded })}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`api process failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
