import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, HttpClient, waitFor } from '@app/testing';

const root = path.resolve(__dirname, '../../..');

/**
 * Bounds of the waits below. They only cap a hang: the test goes on as soon as the process says it
 * is ready, however long a shared, busy machine takes to build, boot tfjs and run the task.
 */
const READY_TIMEOUT_MS = 5 * 60_000;
const TASK_TIMEOUT_MS = 5 * 60_000;

/** `npm start` as a new user runs it: the built apps, started by scripts/start.mjs. */
describe('npm start (scripts/start.mjs)', () => {
  beforeAll(() => {
    if (
      !existsSync(path.join(root, 'dist/apps/api/main.js')) ||
      !existsSync(path.join(root, 'dist/apps/worker/main.js'))
    ) {
      const build = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
      if (build.status !== 0) throw new Error('npm run build failed');
    }
  }, 15 * 60_000);

  function start(env: Record<string, string>): { child: ChildProcess; output: () => string } {
    let out = '';
    const child = spawn(process.execPath, ['scripts/start.mjs'], {
      cwd: root,
      env: {
        ...process.env,
        START_ENV_FILE: path.join(mkdtempSync(path.join(os.tmpdir(), 'start-script-env-')), '.env'),
        ...env,
      },
    });
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    return { child, output: () => out };
  }

  /** The end of the process's output and how it ended, for a failure message. */
  const report = (child: ChildProcess, output: () => string) => {
    const ended =
      child.exitCode !== null || child.signalCode !== null
        ? `npm start exited (code ${child.exitCode}, signal ${child.signalCode})`
        : 'npm start is still running';
    return `${ended}; last output:\n${output().slice(-4000)}`;
  };

  /**
   * Waits for `ready` to hold, polling; fails at once, with the output, if the process exits
   * meanwhile, and after `timeoutMs` with the output and how far it got.
   */
  const untilReady = <T>(
    child: ChildProcess,
    output: () => string,
    what: string,
    ready: () => Promise<T | undefined>,
    timeoutMs: number,
  ) =>
    waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`gave up waiting for ${what}: ${report(child, output)}`);
        }
        return ready();
      },
      { timeoutMs, intervalMs: 250, what, explain: () => report(child, output) },
    );

  const exit = (child: ChildProcess) =>
    new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.on('exit', (code) => resolve(code));
    });

  it('with no Redis and no redis-server on the PATH, exits at once saying how to get one', async () => {
    const port = await freePort();
    const started = Date.now();
    const { child, output } = start({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      // The script runs with process.execPath; an empty PATH hides redis-server.
      PATH: '/nonexistent',
    });
    // "At once": it does not wait for a Redis to appear. Generous bounds for a busy machine.
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    expect(await exit(child)).toBe(1);
    clearTimeout(timer);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(output()).toMatch(/Nothing answers at REDIS_URL/);
    expect(output()).toMatch(/redis-server/);
  });

  const hasRedisServer = spawnSync('sh', ['-c', 'command -v redis-server']).status === 0;
  (hasRedisServer ? it : it.skip)(
    'starts its own redis-server when none answers, serves the API and a worker, and stops cleanly',
    async () => {
      const [redisPort, apiPort, workerHealthPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const redisDir = mkdtempSync(path.join(os.tmpdir(), 'start-script-redis-'));
      const { child, output } = start({
        REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        START_REDIS_DIR: redisDir,
        API_PORT: String(apiPort),
        API_HOST: '127.0.0.1',
        PUBLIC_BASE_URL: `http://127.0.0.1:${apiPort}`,
        API_KEYS: 'start-test-key',
        STORAGE_LOCAL_DIR: mkdtempSync(path.join(os.tmpdir(), 'test-media-')),
        WORKER_HEARTBEAT_INTERVAL: '1',
        // Not the default 8002: other suites and other checkouts may hold it.
        WORKER_HEALTH_PORT: String(workerHealthPort),
      });
      try {
        const http = new HttpClient(`http://127.0.0.1:${apiPort}/api/v1`);
        const answers = async (url: string) =>
          (await fetch(url).catch(() => null))?.status === 200 ? true : undefined;
        // The processes' own readiness: the API's probe, then the worker's (booted, tfjs up).
        await untilReady(
          child,
          output,
          'the API to be ready',
          () => answers(`http://127.0.0.1:${apiPort}/api/v1/health/ready`),
          READY_TIMEOUT_MS,
        );
        await untilReady(
          child,
          output,
          'the worker to be ready',
          () => answers(`http://127.0.0.1:${workerHealthPort}/health/ready`),
          READY_TIMEOUT_MS,
        );
        expect(output()).toMatch(/starting .*redis-server/);
        expect(output()).toMatch(/Swagger UI at http:\/\/127\.0\.0\.1:\d+\/docs/);
        expect(existsSync(path.join(redisDir, 'appendonlydir'))).toBe(true);

        const submitted = await http.post(
          '/tasks/submit',
          {
            project_id: 'start_p',
            task_type: 'generate_image',
            task_data: { character_description: 'x', width: 64, height: 64 },
          },
          { key: 'start-test-key' },
        );
        expect(submitted.status).toBe(201);
        const done = await untilReady(
          child,
          output,
          'the task to finish',
          async () => {
            const s = (
              await http.get(`/tasks/${submitted.body.task_id}/status`, { key: 'start-test-key' })
            ).body;
            return s.status === 'completed' || s.status === 'failed' ? s : undefined;
          },
          TASK_TIMEOUT_MS,
        );
        expect({ status: done.status, error: done.error }).toEqual({
          status: 'completed',
          error: null,
        });
      } finally {
        child.kill('SIGTERM');
        await exit(child);
      }
      // redis-server was a child: it is gone too.
      const refused = await new Promise<boolean>((resolve) => {
        const socket = net.connect(redisPort, '127.0.0.1');
        socket.on('connect', () => {
          socket.destroy();
          resolve(false);
        });
        socket.on('error', () => resolve(true));
      });
      expect(refused).toBe(true);
    },
    // Both waits at their bounds, plus the stop: only a hang gets this far.
    READY_TIMEOUT_MS * 2 + TASK_TIMEOUT_MS + 2 * 60_000,
  );
});
