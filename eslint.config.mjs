// typescript-eslint with type information: floating promises and non-exhaustive switches are errors.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Import boundary (DESIGN: "apps/api imports no media, model or worker code"). Media and model
 * packages, the GPU lib and the worker app may not be imported by the API app nor by the libs it
 * loads; libs/gpu, libs/payload, libs/webhooks and libs/testing are not loaded by the API and are
 * not covered. Static imports, `export … from`, `import x = require()`, dynamic `import()` and
 * `require()` with a literal name all count. Tests are not covered: specs and apps/api/test never
 * run in the API process (the e2e harness runs a worker beside the API on purpose; the deployment
 * spec reads the worker's probe paths). apps/api/test/media-free.e2e-spec.ts checks the same at
 * run time: what the API process really loads.
 */
const MEDIA_MODULES = [
  'sharp',
  '@img/*',
  '@tensorflow/*',
  '@ffmpeg-installer/*',
  'mespeak',
  '@breezystack/lamejs',
  '@upscalerjs/*',
  '@vladmandic/*',
  'nsfwjs',
];
// For esquery selectors, which end a regex at any '/': slashes written as \x2F.
const MEDIA_MODULE_REGEX = String.raw`^(sharp|@img\x2F.*|@tensorflow\x2F.*|@ffmpeg-installer\x2F.*|mespeak|@breezystack\x2Flamejs|@upscalerjs\x2F.*|@vladmandic\x2F.*|nsfwjs|@app\x2Fgpu)(\x2F.*)?$`;
const API_BOUNDARY_MESSAGE =
  'The API and the libs it loads never load media, model, GPU or worker code: put it in apps/worker (see eslint.config.mjs).';
const API_SIDE_FILES = [
  'apps/api/src/**/*.ts',
  'libs/{config,net,observability,projects,redis,storage,tasks}/src/**/*.ts',
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', '**/*.mjs', '**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-extraneous-class': 'off',
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    files: API_SIDE_FILES,
    ignores: ['**/*.spec.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [...MEDIA_MODULES, ...MEDIA_MODULES.map((m) => `${m}/*`)],
              message: API_BOUNDARY_MESSAGE,
            },
            { group: ['@app/gpu', '@app/gpu/*'], message: API_BOUNDARY_MESSAGE },
            // The worker app, by relative path (../../worker/src/…) or from the root (apps/worker/…).
            {
              regex: '(^|/)(apps/)?worker/(src|test)(/|$)|^(\\.\\./)+apps/',
              message: API_BOUNDARY_MESSAGE,
            },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: `ImportExpression[source.value=/${MEDIA_MODULE_REGEX}/]`,
          message: API_BOUNDARY_MESSAGE,
        },
        {
          selector: `CallExpression[callee.name='require'][arguments.0.value=/${MEDIA_MODULE_REGEX}/]`,
          message: API_BOUNDARY_MESSAGE,
        },
      ],
    },
  },
  {
    files: ['**/*.spec.ts', '**/test/**/*.ts'],
    rules: { 'no-console': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
