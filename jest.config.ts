import type { Config } from 'jest';

// @swc/jest compiles TypeScript with Nest's decorator metadata; a few transitive deps ship ESM only
// (content-disposition via @fastify/static; cockatiel 4), so those are transformed too.
const swc: [string, Record<string, unknown>] = [
  '@swc/jest',
  {
    jsc: {
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      target: 'es2022',
      keepClassNames: true,
    },
    module: { type: 'commonjs' },
  },
];

const moduleNameMapper = {
  '^@app/(config|redis|tasks|projects|storage|payload|gpu|observability|net|webhooks|workers|testing)$':
    '<rootDir>/libs/$1/src',
  '^@app/(config|redis|tasks|projects|storage|payload|gpu|observability|net|webhooks|workers|testing)/(.*)$':
    '<rootDir>/libs/$1/src/$2',
};

const common = {
  rootDir: __dirname,
  testEnvironment: 'node',
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: ['/node_modules/(?!(content-disposition|cockatiel)/)'],
  moduleNameMapper,
  moduleFileExtensions: ['ts', 'js', 'mjs', 'json'],
  setupFiles: ['reflect-metadata', '<rootDir>/libs/testing/jest/redis-mode.single.setup.ts'],
};

/**
 * The same suites again on a real three-master Redis Cluster (issue 15): the task lifecycle and
 * listing through the API, webhooks with the outbox relay, and the SIGKILL/SIGTERM faults.
 */
const CLUSTER_SUITES = [
  'apps/api/test/task-lifecycle.e2e-spec.ts',
  'apps/api/test/api-contract.e2e-spec.ts',
  'apps/worker/test/webhooks.e2e-spec.ts',
  'apps/worker/test/faults.e2e-spec.ts',
];

const config: Config = {
  // e2e suites wait for real workers; unit specs finish far sooner.
  testTimeout: 120_000,
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/{apps,libs}/**/src/**/*.spec.ts'],
    },
    {
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/{apps,libs}/*/test/**/*.e2e-spec.ts'],
    },
    {
      ...common,
      displayName: 'e2e-cluster',
      testMatch: CLUSTER_SUITES.map((f) => `<rootDir>/${f}`),
      globalSetup: '<rootDir>/libs/testing/jest/redis-cluster.global-setup.ts',
      globalTeardown: '<rootDir>/libs/testing/jest/redis-cluster.global-teardown.ts',
      setupFiles: ['reflect-metadata', '<rootDir>/libs/testing/jest/redis-mode.cluster.setup.ts'],
    },
  ],
};

export default config;
