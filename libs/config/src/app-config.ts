import 'reflect-metadata';
import { hostname } from 'node:os';
import path from 'node:path';
import { plainToInstance } from 'class-transformer';
import { validateSync, type ValidationError } from 'class-validator';
import {
  EnvSchema,
  type LogFormat,
  type LogLevel,
  type PayloadAuthScheme,
  type StorageDriverName,
  type TfjsBackendChoice,
} from './env.schema';
import {
  parseHostPortList,
  withHiddenSecret,
  type RedisHostPort,
  type RedisSettings,
} from './redis-settings';

export type QueueId = 'gpu_heavy' | 'gpu_medium' | 'cpu_intensive';

/** Raised when the environment is invalid; its message names every bad variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * The service's configuration, typed and validated at boot. Injected as a class token; the only
 * code that reads `process.env` is `AppConfig.fromEnv`.
 */
export class AppConfig {
  readonly nodeEnv!: 'development' | 'production' | 'test';
  /** How to reach Redis (`mode`: REDIS_URL, REDIS_CLUSTER_NODES or REDIS_SENTINELS), the prefix. */
  readonly redis!: RedisSettings;
  readonly api!: {
    host: string;
    port: number;
    /** Every accepted key. */
    keys: readonly string[];
    /** Each key with the projects it may reach (null: every project). */
    keyScopes: readonly ApiKeyScope[];
    publicBaseUrl: string;
    swagger: boolean;
    bodyLimitBytes: number;
    /** Bytes of a refused body read and discarded before the connection is closed. */
    bodyDiscardLimitBytes: number;
    rateLimit: { submit: number; windowSeconds: number };
    idempotencyTtlSeconds: number;
  };
  readonly tasks!: {
    maxRetryAttempts: number;
    /** Automatic retries per error class (RETRY_LIMITS over seed 000's values). */
    retryLimits: Record<RetryClass, number>;
    reconcile: { intervalMs: number; graceMs: number; batch: number };
    unknownTypeTimeoutSeconds: number;
    retryDelayScale: number;
    timeoutSeconds: number;
    queueMaxSize: number;
  };
  readonly worker!: {
    id: string;
    queues: readonly QueueId[];
    concurrency: Readonly<Record<QueueId, number>>;
    heartbeatIntervalSeconds: number;
    shutdownGraceSeconds: number;
    lockDurationMs: number;
    stalledIntervalMs: number;
  };
  readonly gpu!: {
    backend: TfjsBackendChoice;
    modelsDir: string;
    modelCacheBytes: number;
    modelsFromStorage: boolean;
    modelCacheDir: string;
    /** MODEL_PRELOAD: whether the declared models, and which others by name. */
    modelPreload: { declared: boolean; names: readonly string[] };
  };
  readonly storage!: {
    driver: StorageDriverName;
    localDir: string;
    mediaUrlTtlSeconds: number;
    /**
     * MEDIA_URL_SECRET, or null: the key is then derived at boot from a per-deployment salt in
     * Redis (`SigningKeys` in libs/redis, which is what signs and verifies).
     */
    mediaUrlSecret: string | null;
    /** Set when driver is r2 or s3 (validated at boot). */
    s3: {
      endpoint?: string;
      accessKeyId: string;
      secretAccessKey: string;
      bucket: string;
      region: string;
      publicBaseUrl?: string;
      forcePathStyle: boolean;
    } | null;
  };
  /** null when PAYLOAD_API_URL is unset: registration is skipped. */
  readonly payload!: {
    apiUrl: string;
    apiKey?: string;
    mediaCollection: string;
    authScheme: PayloadAuthScheme;
    authCollection: string;
    timeoutMs: number;
  } | null;
  readonly ops!: {
    metrics: boolean;
    workerHealthPort: number;
    projectLabelLimit: number;
    bullBoard: {
      enabled: boolean;
      readOnly: boolean;
      basicAuth?: { user: string; password: string };
    };
    logFormat: LogFormat;
  };
  /** Every outbound request: task inputs and webhooks. */
  readonly fetch!: {
    timeoutMs: number;
    maxBytes: number;
    allowPrivateUrls: boolean;
    imageMaxPixels: number;
  };
  readonly webhooks!: {
    /**
     * WEBHOOK_SECRET as `whsec_<base64>`, or null: derived at boot like the media URL key
     * (`SigningKeys` in libs/redis, which is what signs).
     */
    secret: string | null;
    /** True when WEBHOOK_SECRET was unset and the secret is derived (API_KEYS + the salt). */
    derivedSecret: boolean;
    maxAttempts: number;
    timeoutMs: number;
    retryScale: number;
    concurrency: number;
  };
  /** The image safety check of tasks that ask for it (`safety_check: true`). */
  readonly safety!: {
    /** SAFETY_BLOCK_THRESHOLD: an unsafe score above it blocks the task; null: never block. */
    blockThreshold: number | null;
  };
  /** Seed 001 Data Retention: what the workers' retention sweeper removes, and when. */
  readonly retention!: {
    /** Days an ended task is kept; null: forever. */
    taskDays: number | null;
    /** Days an ended task's output is kept (never more than taskDays); null: forever. */
    mediaDays: number | null;
    intervalMs: number;
    batch: number;
  };
  readonly logLevel!: LogLevel;

  static fromEnv(env: NodeJS.ProcessEnv = process.env): AppConfig {
    const raw: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(env)) {
      if (value !== undefined && value !== '') raw[key] = value;
    }
    const parsed = plainToInstance(EnvSchema, raw, {
      enableImplicitConversion: true,
      exposeDefaultValues: true,
    });
    const errors = validateSync(parsed, { whitelist: false, forbidUnknownValues: false });
    if (errors.length > 0) {
      throw new ConfigError(`Invalid configuration:\n${formatErrors(errors)}`);
    }
    return AppConfig.fromSchema(parsed);
  }

  static fromSchema(e: EnvSchema): AppConfig {
    requireProductionSecrets(e);
    const keyScopes = parseApiKeys([...e.API_KEYS.split(','), ...(e.API_KEY ? [e.API_KEY] : [])]);
    const keys = keyScopes.map((k) => k.key);
    const queues = [...new Set(e.WORKER_QUEUES.split(',').map((q) => q.trim()))] as QueueId[];
    const config = new AppConfig();
    Object.assign(config, {
      nodeEnv: e.NODE_ENV as AppConfig['nodeEnv'],
      redis: redisSettings(e),
      api: {
        host: e.API_HOST,
        port: e.API_PORT,
        keys,
        keyScopes,
        publicBaseUrl: e.PUBLIC_BASE_URL.replace(/\/+$/, ''),
        swagger: e.ENABLE_SWAGGER,
        bodyLimitBytes: e.API_BODY_LIMIT,
        bodyDiscardLimitBytes: e.API_BODY_DISCARD_LIMIT,
        rateLimit: { submit: e.RATE_LIMIT_SUBMIT, windowSeconds: e.RATE_LIMIT_WINDOW_SECONDS },
        idempotencyTtlSeconds: e.IDEMPOTENCY_TTL,
      },
      tasks: {
        maxRetryAttempts: e.MAX_RETRY_ATTEMPTS,
        retryLimits: retryLimits(e.RETRY_LIMITS),
        reconcile: {
          intervalMs: e.RECONCILE_INTERVAL_MS,
          graceMs: e.RECONCILE_GRACE_MS,
          batch: e.RECONCILE_BATCH,
        },
        unknownTypeTimeoutSeconds: e.UNKNOWN_TASK_TYPE_TIMEOUT,
        retryDelayScale: e.RETRY_DELAY_SCALE,
        timeoutSeconds: e.TASK_TIMEOUT,
        queueMaxSize: e.QUEUE_MAX_SIZE,
      },
      worker: {
        id: e.WORKER_ID ?? `${hostname()}-${process.pid}`,
        queues,
        concurrency: {
          gpu_heavy: e.WORKER_CONCURRENCY_GPU_HEAVY,
          gpu_medium: e.WORKER_CONCURRENCY_GPU_MEDIUM,
          cpu_intensive: e.WORKER_CONCURRENCY_CPU_INTENSIVE,
        },
        heartbeatIntervalSeconds: e.WORKER_HEARTBEAT_INTERVAL,
        shutdownGraceSeconds: e.SHUTDOWN_GRACE,
        lockDurationMs: e.WORKER_LOCK_DURATION_MS,
        stalledIntervalMs: e.WORKER_STALLED_INTERVAL_MS,
      },
      gpu: {
        backend: e.TFJS_BACKEND,
        modelsDir: path.resolve(e.MODELS_DIR),
        modelCacheBytes: e.MODEL_CACHE_BYTES,
        modelsFromStorage: e.MODELS_FROM_STORAGE,
        modelCacheDir: path.resolve(e.MODEL_CACHE_DIR),
        modelPreload: parsePreload(e.MODEL_PRELOAD),
      },
      storage: {
        driver: e.STORAGE_DRIVER,
        localDir: path.resolve(e.STORAGE_LOCAL_DIR),
        mediaUrlTtlSeconds: e.MEDIA_URL_TTL,
        mediaUrlSecret: e.MEDIA_URL_SECRET ?? null,
        s3: e.STORAGE_DRIVER === 'local' ? null : s3Settings(e),
      },
      payload: e.PAYLOAD_API_URL
        ? {
            apiUrl: e.PAYLOAD_API_URL.replace(/\/+$/, ''),
            apiKey: e.PAYLOAD_API_KEY,
            mediaCollection: e.PAYLOAD_MEDIA_COLLECTION,
            authScheme: e.PAYLOAD_AUTH_SCHEME,
            authCollection: e.PAYLOAD_AUTH_COLLECTION,
            timeoutMs: e.PAYLOAD_TIMEOUT_MS,
          }
        : null,
      ops: {
        metrics: e.ENABLE_METRICS,
        workerHealthPort: e.WORKER_HEALTH_PORT,
        projectLabelLimit: e.METRICS_PROJECT_LABEL_LIMIT,
        bullBoard: {
          enabled: e.BULL_BOARD_ENABLED,
          readOnly: e.BULL_BOARD_READ_ONLY,
          basicAuth: bullBoardBasicAuth(e.BULL_BOARD_BASIC_AUTH),
        },
        logFormat: e.LOG_FORMAT,
      },
      fetch: {
        timeoutMs: e.FETCH_TIMEOUT_MS,
        maxBytes: e.FETCH_MAX_BYTES,
        allowPrivateUrls: e.ALLOW_PRIVATE_URLS,
        imageMaxPixels: e.IMAGE_MAX_PIXELS,
      },
      webhooks: {
        secret: e.WEBHOOK_SECRET ? withWhsecPrefix(e.WEBHOOK_SECRET) : null,
        derivedSecret: !e.WEBHOOK_SECRET,
        maxAttempts: e.WEBHOOK_MAX_ATTEMPTS,
        timeoutMs: e.WEBHOOK_TIMEOUT_MS,
        retryScale: e.WEBHOOK_RETRY_SCALE,
        concurrency: e.WEBHOOK_CONCURRENCY,
      },
      safety: { blockThreshold: e.SAFETY_BLOCK_THRESHOLD ?? null },
      retention: retentionSettings(e),
      logLevel: e.LOG_LEVEL,
    });
    return config;
  }
}

/** One accepted API key and the projects it may reach (null: all). */
export interface ApiKeyScope {
  key: string;
  projects: readonly string[] | null;
}

const PROJECT_LIST = /^[a-zA-Z0-9_-]{1,64}(\|[a-zA-Z0-9_-]{1,64})*$/;

/** `key` or `key:project-a|project-b`, per comma-separated entry. */
function parseApiKeys(entries: string[]): ApiKeyScope[] {
  const scopes: ApiKeyScope[] = [];
  const problems: string[] = [];
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry.length === 0) continue;
    const colon = entry.lastIndexOf(':');
    if (colon < 0) {
      scopes.push({ key: entry, projects: null });
      continue;
    }
    const key = entry.slice(0, colon).trim();
    const projects = entry.slice(colon + 1).trim();
    if (key.length === 0 || !PROJECT_LIST.test(projects)) {
      problems.push(
        `- API_KEYS entry #${scopes.length + problems.length + 1} must be key or key:project|project (project ids of letters, digits, _ and -)`,
      );
      continue;
    }
    scopes.push({ key, projects: [...new Set(projects.split('|'))] });
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  if (scopes.length === 0)
    throw new ConfigError('Invalid configuration:\n- API_KEYS must list at least one key');
  return scopes;
}

/** Seed 000's automatic retries per error class. */
export const SEED_RETRY_LIMITS = { network: 3, gpu_memory: 2, rate_limit: 5, default: 1 } as const;
export type RetryClass = keyof typeof SEED_RETRY_LIMITS;

function retryLimits(raw: string): Record<RetryClass, number> {
  const limits: Record<RetryClass, number> = { ...SEED_RETRY_LIMITS };
  for (const pair of raw.split(',')) {
    const [cls, n] = pair.split(':').map((x) => x.trim());
    if (cls && n) limits[cls as RetryClass] = Number(n);
  }
  return limits;
}

function withWhsecPrefix(secret: string): string {
  return secret.startsWith('whsec_') ? secret : `whsec_${secret}`;
}

/**
 * Production signs with secrets of its own: a key derived from the API keys (even salted, see
 * SigningKeys) changes whenever the keys rotate, and the operator must hand WEBHOOK_SECRET to the
 * receivers anyway.
 */
function requireProductionSecrets(e: EnvSchema): void {
  if (e.NODE_ENV !== 'production') return;
  const missing = (['MEDIA_URL_SECRET', 'WEBHOOK_SECRET'] as const).filter((k) => !e[k]);
  if (missing.length === 0) return;
  throw new ConfigError(
    `Invalid configuration:\n${missing
      .map(
        (k) =>
          `- ${k} is required with NODE_ENV=production (${k === 'WEBHOOK_SECRET' ? 'whsec_$(openssl rand -base64 32)' : '$(openssl rand -hex 32)'})`,
      )
      .join('\n')}`,
  );
}

/**
 * The connection mode from which variables are set: REDIS_CLUSTER_NODES (cluster), REDIS_SENTINELS
 * (sentinel), else REDIS_URL (single). Messages name variables, never a value that may be secret.
 */
function redisSettings(e: EnvSchema): RedisSettings {
  const problems: string[] = [];
  if (e.REDIS_CLUSTER_NODES && e.REDIS_SENTINELS) {
    problems.push(
      '- REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: set one (cluster or sentinel mode)',
    );
  }
  if (e.REDIS_SENTINELS && !e.REDIS_SENTINEL_NAME) {
    problems.push(
      '- REDIS_SENTINEL_NAME is required with REDIS_SENTINELS (the name in `sentinel monitor <name> ...`)',
    );
  }
  if (!e.REDIS_SENTINELS) {
    for (const k of ['REDIS_SENTINEL_NAME', 'REDIS_SENTINEL_PASSWORD'] as const) {
      if (e[k]) problems.push(`- ${k} is set but REDIS_SENTINELS is not`);
    }
  }
  const url = new URL(e.REDIS_URL);
  const db = url.pathname.replace(/^\//, '');
  const single = !e.REDIS_CLUSTER_NODES && !e.REDIS_SENTINELS;
  if (single && !/^\d{0,2}$/.test(db)) {
    problems.push('- REDIS_URL must name a database number in its path (redis://host:6379/0)');
  }
  if (single && e.REDIS_TLS && url.protocol !== 'rediss:') {
    problems.push(
      '- REDIS_TLS=true applies to REDIS_CLUSTER_NODES and REDIS_SENTINELS; for one server use a rediss:// REDIS_URL',
    );
  }
  if (problems.length > 0) throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);

  const common = { prefix: e.REDIS_PREFIX, commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS };
  const nodes = (raw: string): RedisHostPort[] => {
    const parsed = parseHostPortList(raw);
    // The schema has checked the list already.
    if (!('nodes' in parsed)) throw new ConfigError(`Invalid configuration: ${parsed.bad}`);
    return parsed.nodes;
  };
  let settings: RedisSettings;
  let password = e.REDIS_PASSWORD;
  if (e.REDIS_CLUSTER_NODES) {
    settings = {
      mode: 'cluster',
      ...common,
      nodes: nodes(e.REDIS_CLUSTER_NODES),
      tls: e.REDIS_TLS,
    };
  } else if (e.REDIS_SENTINELS) {
    settings = {
      mode: 'sentinel',
      ...common,
      sentinels: nodes(e.REDIS_SENTINELS),
      name: e.REDIS_SENTINEL_NAME!,
      tls: e.REDIS_TLS,
    };
    withHiddenSecret(settings, 'sentinelPassword', e.REDIS_SENTINEL_PASSWORD);
  } else {
    settings = {
      mode: 'single',
      ...common,
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || 6379),
      db: Number(db || 0),
      tls: url.protocol === 'rediss:',
    };
    password ??= url.password ? decodeURIComponent(url.password) : undefined;
  }
  const username =
    e.REDIS_USERNAME ??
    (settings.mode === 'single' && url.username ? decodeURIComponent(url.username) : undefined);
  if (username !== undefined) settings.username = username;
  return withHiddenSecret(settings, 'password', password);
}

function s3Settings(e: EnvSchema): NonNullable<AppConfig['storage']['s3']> {
  const missing = (['R2_ACCESS_KEY', 'R2_SECRET_KEY', 'R2_BUCKET_NAME'] as const).filter(
    (k) => !e[k],
  );
  if (e.STORAGE_DRIVER === 'r2' && !e.R2_ENDPOINT) missing.unshift('R2_ENDPOINT' as never);
  if (missing.length > 0) {
    throw new ConfigError(
      `Invalid configuration:\n${missing.map((k) => `- ${k} is required with STORAGE_DRIVER=${e.STORAGE_DRIVER}`).join('\n')}`,
    );
  }
  return {
    endpoint: e.R2_ENDPOINT,
    accessKeyId: e.R2_ACCESS_KEY!,
    secretAccessKey: e.R2_SECRET_KEY!,
    bucket: e.R2_BUCKET_NAME!,
    region: e.R2_REGION,
    publicBaseUrl: e.R2_PUBLIC_BASE_URL?.replace(/\/+$/, ''),
    forcePathStyle: e.R2_FORCE_PATH_STYLE,
  };
}

/** "user:password" (validated by the schema); the password may itself contain colons. */
function bullBoardBasicAuth(value?: string): { user: string; password: string } | undefined {
  if (!value) return undefined;
  const colon = value.indexOf(':');
  return { user: value.slice(0, colon), password: value.slice(colon + 1) };
}

function formatErrors(errors: ValidationError[]): string {
  return errors
    .flatMap((err) => Object.values(err.constraints ?? {}).map((m) => `- ${m}`))
    .join('\n');
}

/**
 * Loads `.env` from the working directory when there is one. Variables already in the
 * environment win, so a deployment's settings are never overridden by a stray file.
 */
export function loadDotEnv(file = '.env'): void {
  try {
    process.loadEnvFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

function parsePreload(value: string): { declared: boolean; names: string[] } {
  if (value === 'none') return { declared: false, names: [] };
  const items = value.split(',');
  return { declared: items.includes('declared'), names: items.filter((i) => i !== 'declared') };
}

/**
 * 0 means unset (forever). Media kept longer than its record could never be deleted: once the
 * record is gone nothing names the object any more, so that combination stops the boot.
 */
function retentionSettings(e: EnvSchema): AppConfig['retention'] {
  const taskDays = e.TASK_RETENTION_DAYS || null;
  const mediaDays = e.MEDIA_RETENTION_DAYS || null;
  if (taskDays !== null && mediaDays !== null && mediaDays > taskDays) {
    throw new ConfigError(
      `Invalid configuration:\n- MEDIA_RETENTION_DAYS (${mediaDays}) must not exceed TASK_RETENTION_DAYS (${taskDays}): an output is deleted with its record at the latest`,
    );
  }
  return { taskDays, mediaDays, intervalMs: e.RETENTION_INTERVAL_MS, batch: e.RETENTION_BATCH };
}
