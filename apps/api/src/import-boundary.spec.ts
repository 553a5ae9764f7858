import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const ROOT = path.resolve(__dirname, '../../..');

/**
 * Lints each [file path, source] with the repository's own eslint.config.mjs, only the boundary
 * rules on (type-aware rules off: the files are not on disk), in a child process because ESLint
 * loads its flat config as an ES module, which jest's CommonJS runtime cannot.
 */
async function boundaryMessages(cases: Array<[string, string]>): Promise<string[][]> {
  const script = `
    import { ESLint } from 'eslint';
    const eslint = new ESLint({
      cwd: process.cwd(),
      overrideConfig: { languageOptions: { parserOptions: { projectService: false } } },
      ruleFilter: ({ ruleId }) =>
        ruleId === '@typescript-eslint/no-restricted-imports' || ruleId === 'no-restricted-syntax',
    });
    const out = [];
    for (const [filePath, code] of JSON.parse(process.argv[1])) {
      const [result] = await eslint.lintText(code, { filePath });
      out.push(result.messages.map((m) => m.ruleId + ': ' + m.message));
    }
    process.stdout.write(JSON.stringify(out));
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--input-type=module', '-e', script, JSON.stringify(cases)],
    { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as string[][];
}

const FORBIDDEN_IMPORTS: Array<[string, string]> = [
  ['sharp', "import sharp from 'sharp';\nexport const s = sharp;\n"],
  ['a type from sharp', "import type { Sharp } from 'sharp';\nexport type S = Sharp;\n"],
  ['@tensorflow/*', "import * as tf from '@tensorflow/tfjs-core';\nexport { tf };\n"],
  ['@ffmpeg-installer/*', "export * from '@ffmpeg-installer/ffmpeg';\n"],
  ['@app/gpu', "import { GpuService } from '@app/gpu';\nexport const g = GpuService;\n"],
  ['import()', "export const load = () => import('@tensorflow/tfjs-backend-wasm');\n"],
  ['require()', "export const s: unknown = require('sharp');\n"],
];

describe('import boundary lint (eslint.config.mjs)', () => {
  it('refuses media, model, GPU and worker imports in apps/api and the libs it loads', async () => {
    const cases: Array<[string, string]> = [
      ...FORBIDDEN_IMPORTS.map(([, code]): [string, string] => ['apps/api/src/probe.ts', code]),
      ...FORBIDDEN_IMPORTS.map(([, code]): [string, string] => ['libs/tasks/src/probe.ts', code]),
      ['libs/storage/src/probe.ts', "import sharp from 'sharp';\nexport const s = sharp;\n"],
      [
        'apps/api/src/tasks/probe.ts',
        "import { WorkerModule } from '../../../worker/src/worker.module';\nexport const w = WorkerModule;\n",
      ],
      [
        'apps/api/src/probe.ts',
        "import { InputFetcher } from 'apps/worker/src/inputs/input-fetcher';\nexport const f = InputFetcher;\n",
      ],
    ];
    const results = await boundaryMessages(cases);
    results.forEach((messages, i) => {
      expect({ file: cases[i][0], code: cases[i][1], fired: messages.length > 0 }).toEqual({
        file: cases[i][0],
        code: cases[i][1],
        fired: true,
      });
      expect(messages.join('\n')).toMatch(/never load media, model, GPU or worker code/);
    });
  });

  it('lets the worker and the GPU lib import them, and the API import its own code', async () => {
    const results = await boundaryMessages([
      ['apps/worker/src/probe.ts', "import sharp from 'sharp';\nexport const s = sharp;\n"],
      ['libs/gpu/src/probe.ts', "import * as tf from '@tensorflow/tfjs-core';\nexport { tf };\n"],
      [
        'apps/api/src/probe.ts',
        "import { WorkersController } from './workers/workers.controller';\nimport { StorageDriver } from '@app/storage';\nexport { WorkersController, StorageDriver };\n",
      ],
    ]);
    expect(results).toEqual([[], [], []]);
  });
});
