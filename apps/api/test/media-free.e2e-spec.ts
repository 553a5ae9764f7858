import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const ROOT = path.resolve(__dirname, '../../..');
const ENTRY = path.join(__dirname, 'support/api-process.ts');

/**
 * Media, model and worker code the API process must never load (DESIGN: "apps/api never loads
 * GPU code"). `@img/` holds sharp's native binaries.
 */
const FORBIDDEN = [
  /[/\\]node_modules[/\\]sharp[/\\]/,
  /[/\\]node_modules[/\\]@img[/\\]/,
  /[/\\]node_modules[/\\]@tensorflow[/\\]/,
  /[/\\]node_modules[/\\]@ffmpeg-installer[/\\]/,
  /[/\\]node_modules[/\\]mespeak[/\\]/,
  /[/\\]apps[/\\]worker[/\\]/,
  /[/\\]libs[/\\]gpu[/\\]/,
];

/** Starts the API in a child process (ts-node, as in production minus the build) and lists what it loaded. */
async function modulesLoadedByApi(env: Record<string, string> = {}): Promise<string[]> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', ENTRY],
    {
      cwd: ROOT,
      env: { ...process.env, TS_NODE_PROJECT: path.join(ROOT, 'tsconfig.json'), ...env },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const line = stdout.trim().split('\n').pop() ?? '';
  return (JSON.parse(line) as { loaded: string[] }).loaded;
}

function forbiddenIn(loaded: string[]): string[] {
  return loaded.filter((file) => FORBIDDEN.some((re) => re.test(file)));
}

describe('the API process', () => {
  it('loads no media, model or worker code while it serves', async () => {
    const loaded = await modulesLoadedByApi({
      API_PROCESS_ENV: JSON.stringify({ STORAGE_DRIVER: 'local' }),
    });
    // The listing is real: the API's own modules and its libs are in it ...
    expect(loaded.some((f) => f.endsWith(path.join('apps', 'api', 'src', 'api.module.ts')))).toBe(
      true,
    );
    expect(loaded.some((f) => f.includes(path.join('libs', 'storage', 'src')))).toBe(true);
    expect(loaded.some((f) => f.includes(path.join('libs', 'tasks', 'src')))).toBe(true);
    // ... and nothing of sharp, tfjs, ffmpeg, eSpeak, @app/gpu or apps/worker.
    expect(forbiddenIn(loaded)).toEqual([]);
  });

  it('would be seen loading the input fetcher (sharp) if it did', async () => {
    const loaded = await modulesLoadedByApi({
      API_PROCESS_REQUIRE: path.join(ROOT, 'apps/worker/src/inputs/input-fetcher.ts'),
    });
    expect(forbiddenIn(loaded)).toEqual(
      expect.arrayContaining([expect.stringMatching(/node_modules[/\\]sharp[/\\]/)]),
    );
  });
});
