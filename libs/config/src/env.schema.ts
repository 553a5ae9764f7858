import { Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNotEmpty,
  IsNumber,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  Min,
  ValidateBy,
} from 'class-validator';
import { hostPortListMessage, parseHostPortList } from './redis-settings';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'verbose'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const TFJS_BACKENDS = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type TfjsBackendChoice = (typeof TFJS_BACKENDS)[number];
export const STORAGE_DRIVERS = ['local', 'r2', 's3'] as const;
export const PAYLOAD_AUTH_SCHEMES = ['api-key', 'bearer'] as const;
export type PayloadAuthScheme = (typeof PAYLOAD_AUTH_SCHEMES)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type StorageDriverName = (typeof STORAGE_DRIVERS)[number];

// Reads the raw string: implicit conversion has already turned "false" into true by now.
const toBool = ({
  obj,
  key,
  value,
}: {
  obj: Record<string, unknown>;
  key: string;
  value: unknown;
}): unknown => {
  const raw = obj[key] ?? value;
  return typeof raw === 'string' ? ['1', 'true', 'yes', 'on'].includes(raw.toLowerCase()) : raw;
};
const lower = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' ? value.toLowerCase() : value;

/** `host:port,host:port`; the message names the variable and the first bad entry. */
const IsHostPortList = (): PropertyDecorator =>
  ValidateBy({
    name: 'isHostPortList',
    validator: {
      validate: (value: unknown) =>
        typeof value === 'string' && 'nodes' in parseHostPortList(value),
      defaultMessage: hostPortListMessage,
    },
  });

/**
 * Every environment variable the service reads, with its rules. Names are the variables' own so
 * that a validation message names the variable to fix.
 */
export class EnvSchema {
  @IsOptional()
  @IsIn(['development', 'production', 'test'])
  NODE_ENV: string = 'development';

  /**
   * Single mode (the default): one server, `redis://` or `rediss://` (TLS), credentials and the
   * database number in the URL. Ignored when REDIS_CLUSTER_NODES or REDIS_SENTINELS is set.
   */
  @IsUrl({ protocols: ['redis', 'rediss'], require_tld: false, require_protocol: true })
  REDIS_URL: string = 'redis://127.0.0.1:6379';

  /** Cluster mode: comma-separated host:port of some nodes of a Redis Cluster (seeds). */
  @IsOptional()
  @IsHostPortList()
  REDIS_CLUSTER_NODES?: string;

  /** Sentinel mode: comma-separated host:port of the sentinels, with REDIS_SENTINEL_NAME. */
  @IsOptional()
  @IsHostPortList()
  REDIS_SENTINELS?: string;

  /** The primary's name the sentinels monitor (`sentinel monitor <name> ...`). */
  @IsOptional()
  @Matches(/^[A-Za-z0-9_.:-]{1,100}$/, {
    message: 'REDIS_SENTINEL_NAME must be 1-100 of A-Z a-z 0-9 _ . : -',
  })
  REDIS_SENTINEL_NAME?: string;

  /** ACL user of the data nodes (every mode); over the one in REDIS_URL. */
  @IsOptional()
  @IsString()
  REDIS_USERNAME?: string;

  /** Password of the data nodes (every mode); over the one in REDIS_URL. */
  @IsOptional()
  @IsString()
  REDIS_PASSWORD?: string;

  /** Password of the sentinels themselves (sentinel mode). */
  @IsOptional()
  @IsString()
  REDIS_SENTINEL_PASSWORD?: string;

  /** TLS to the cluster nodes or to the sentinels and their primary (single mode: rediss://). */
  @Transform(toBool)
  @IsBoolean()
  REDIS_TLS: boolean = false;

  /**
   * Prefix of every Redis key the service owns. The default `ams` ("AI movie service") is what
   * deployments already store their tasks under, so it stays; the k8s objects carry the same short
   * name (`ams-api`, `ams-worker`).
   */
  @Matches(/^[A-Za-z0-9_.-]{1,40}$/, { message: 'REDIS_PREFIX must be 1-40 of A-Z a-z 0-9 _ . -' })
  REDIS_PREFIX: string = 'ams';

  /**
   * Bound of one command on the shared command connection, ms: while Redis is unreachable a
   * command fails after this long (the API answers 503) instead of waiting for the reconnect.
   * Not applied to BullMQ's, blocking or subscriber connections.
   */
  @IsInt()
  @Min(100)
  @Max(600_000)
  REDIS_COMMAND_TIMEOUT_MS: number = 5000;

  @IsString()
  @IsNotEmpty()
  API_HOST: string = '0.0.0.0';

  @IsInt()
  @Min(0)
  @Max(65535)
  API_PORT: number = 8001;

  /**
   * Comma-separated API keys accepted in X-API-Key. A key may be limited to some projects:
   * `key:project-a|project-b` (other projects answer it 404).
   */
  @IsString()
  @IsNotEmpty({ message: 'API_KEYS must list at least one key (comma-separated)' })
  API_KEYS: string = '';

  /** The seed's single-key variable; added to API_KEYS when set. */
  @IsOptional()
  @IsString()
  API_KEY?: string;

  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  PUBLIC_BASE_URL: string = 'http://localhost:8001';

  /**
   * The most automatic retries of one task, whatever their error classes, and the most runs of
   * lost workers (killed, lock lapsed) taken over before the task fails.
   */
  @IsInt()
  @Min(0)
  @Max(20)
  MAX_RETRY_ATTEMPTS: number = 5;

  /**
   * Automatic retries per error class (seed 000: network 3, GPU memory 2, rate limit 5, other
   * errors 1), as `class:n` pairs; classes left out keep the seed's value.
   */
  @Matches(/^\s*((network|gpu_memory|rate_limit|default)\s*:\s*\d{1,2}\s*(,\s*|$))*$/, {
    message:
      'RETRY_LIMITS must be class:count pairs, e.g. network:3,gpu_memory:2,rate_limit:5,default:1',
  })
  RETRY_LIMITS: string = '';

  /** How often the reconciler looks for tasks whose job is missing or ended (ms; 0: never). */
  @IsInt()
  @Min(0)
  @Max(3_600_000)
  RECONCILE_INTERVAL_MS: number = 15_000;

  /** A task untouched for less than this (ms) is left alone by the reconciler. */
  @IsInt()
  @Min(100)
  @Max(86_400_000)
  RECONCILE_GRACE_MS: number = 60_000;

  /** The most tasks one reconciler pass looks at. */
  @IsInt()
  @Min(1)
  @Max(100_000)
  RECONCILE_BATCH: number = 500;

  /**
   * A job of a task type this worker does not know (a newer API in a rolling deploy) goes back
   * to the queue for a worker that does; after this many seconds of that the task fails.
   */
  @IsInt()
  @Min(1)
  @Max(7 * 24 * 3600)
  UNKNOWN_TASK_TYPE_TIMEOUT: number = 900;

  /** Multiplies the retry delays (30/120/300/60 s); tests and local runs may shorten them. */
  @IsNumber()
  @Min(0)
  @Max(100)
  RETRY_DELAY_SCALE: number = 1;

  @IsInt()
  @Min(1)
  @Max(7 * 24 * 3600)
  TASK_TIMEOUT: number = 3600;

  @IsInt()
  @Min(1)
  @Max(10_000_000)
  QUEUE_MAX_SIZE: number = 1000;

  @Transform(lower)
  @IsIn(LOG_LEVELS)
  LOG_LEVEL: LogLevel = 'info';

  /** Queues this worker consumes, comma-separated: gpu_heavy,gpu_medium,cpu_intensive. */
  @Matches(
    /^\s*(gpu_heavy|gpu_medium|cpu_intensive)(\s*,\s*(gpu_heavy|gpu_medium|cpu_intensive))*\s*$/,
    {
      message:
        'WORKER_QUEUES must be a comma-separated list of gpu_heavy, gpu_medium, cpu_intensive',
    },
  )
  WORKER_QUEUES: string = 'gpu_heavy,gpu_medium,cpu_intensive';

  @IsInt()
  @Min(1)
  @Max(64)
  WORKER_CONCURRENCY_GPU_HEAVY: number = 1;

  @IsInt()
  @Min(1)
  @Max(64)
  WORKER_CONCURRENCY_GPU_MEDIUM: number = 1;

  @IsInt()
  @Min(1)
  @Max(64)
  WORKER_CONCURRENCY_CPU_INTENSIVE: number = 2;

  @IsOptional()
  @Matches(/^[A-Za-z0-9_.:-]{1,100}$/, {
    message: 'WORKER_ID must be 1-100 of A-Z a-z 0-9 _ . : -',
  })
  WORKER_ID?: string;

  @IsInt()
  @Min(1)
  @Max(300)
  WORKER_HEARTBEAT_INTERVAL: number = 10;

  @Transform(lower)
  @IsIn(TFJS_BACKENDS)
  TFJS_BACKEND: TfjsBackendChoice = 'auto';

  @Transform(lower)
  @IsIn(STORAGE_DRIVERS)
  STORAGE_DRIVER: StorageDriverName = 'local';

  @IsString()
  @IsNotEmpty()
  STORAGE_LOCAL_DIR: string = './data/media';

  /** Lifetime of signed media URLs, seconds. */
  @IsInt()
  @Min(60)
  @Max(7 * 24 * 3600)
  MEDIA_URL_TTL: number = 24 * 3600;

  /** Key that signs local media URLs; required in production, else derived (SigningKeys). */
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  MEDIA_URL_SECRET?: string;

  @IsInt()
  @Min(100)
  @Max(600_000)
  FETCH_TIMEOUT_MS: number = 15_000;

  @IsInt()
  @Min(1024)
  @Max(2 * 1024 * 1024 * 1024)
  FETCH_MAX_BYTES: number = 25 * 1024 * 1024;

  @Transform(toBool)
  @IsBoolean()
  ENABLE_SWAGGER: boolean = true;

  /** Seconds a worker lets running tasks finish on SIGTERM before handing them back. */
  @IsInt()
  @Min(0)
  @Max(3600)
  SHUTDOWN_GRACE: number = 30;

  /** BullMQ job lock of a running task, ms; renewed at half of it while the task runs. */
  @IsInt()
  @Min(1000)
  @Max(600_000)
  WORKER_LOCK_DURATION_MS: number = 30_000;

  /** How often workers look for jobs whose worker died (lock expired), ms. */
  @IsInt()
  @Min(500)
  @Max(600_000)
  WORKER_STALLED_INTERVAL_MS: number = 30_000;

  // --- Outbound HTTP safety, limits and webhooks --------------------------------------------

  /**
   * Let inputs and callbacks reach private, loopback, link-local and metadata addresses. Off in
   * production; tests and local runs against services on this machine turn it on.
   */
  @Transform(toBool)
  @IsBoolean()
  ALLOW_PRIVATE_URLS: boolean = false;

  /** Decoded size limit of input images (width x height); larger ones fail cleanly. */
  @IsInt()
  @Min(1)
  @Max(1_000_000_000)
  IMAGE_MAX_PIXELS: number = 50_000_000;

  /** Standard Webhooks signing secret (whsec_<base64>); required in production, else derived. */
  @IsOptional()
  @Matches(/^(whsec_)?[A-Za-z0-9+/=]{16,}$/, {
    message: 'WEBHOOK_SECRET must be whsec_ followed by base64 (at least 16 characters)',
  })
  WEBHOOK_SECRET?: string;

  /** Delivery attempts of one webhook event before it is given up (spread over ~a day). */
  @IsInt()
  @Min(1)
  @Max(30)
  WEBHOOK_MAX_ATTEMPTS: number = 10;

  /** Time a receiver has to answer one delivery, ms. */
  @IsInt()
  @Min(100)
  @Max(120_000)
  WEBHOOK_TIMEOUT_MS: number = 10_000;

  /** Multiplies the webhook retry delays (5 s, 5 min, 30 min, 2 h, 5 h, 10 h ...); tests shorten. */
  @IsNumber()
  @Min(0)
  @Max(100)
  WEBHOOK_RETRY_SCALE: number = 1;

  /** Concurrent webhook deliveries per worker. */
  @IsInt()
  @Min(1)
  @Max(256)
  WEBHOOK_CONCURRENCY: number = 16;

  /** Submits one API key may make per RATE_LIMIT_WINDOW_SECONDS (0: no limit). */
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  RATE_LIMIT_SUBMIT: number = 600;

  @IsInt()
  @Min(1)
  @Max(86_400)
  RATE_LIMIT_WINDOW_SECONDS: number = 60;

  /** How long an Idempotency-Key of a submit is remembered, seconds. */
  @IsInt()
  @Min(60)
  @Max(30 * 86_400)
  IDEMPOTENCY_TTL: number = 86_400;

  /** Largest request body the API reads, bytes (larger: 413). */
  @IsInt()
  @Min(1024)
  @Max(100 * 1024 * 1024)
  API_BODY_LIMIT: number = 1024 * 1024;

  /**
   * Bytes of a refused (413) body the API still reads and discards, so that a client sending it
   * whole sees the 413 instead of a reset connection; past it the connection is closed.
   */
  @IsInt()
  @Min(0)
  @Max(1024 * 1024 * 1024)
  API_BODY_DISCARD_LIMIT: number = 64 * 1024 * 1024;

  // --- Models (libs/gpu model repository) -------------------------------------------------

  /**
   * A deployment's own models, laid out as Triton's: MODELS_DIR/<name>/<version>/config.json
   * with the version's files. Overrides every other source for the same name and version.
   */
  @IsString()
  @IsNotEmpty()
  MODELS_DIR: string = './models';

  /**
   * Whether the object storage's `models/<name>/<version>/` objects are a model source too
   * (downloaded once into MODEL_CACHE_DIR, checked against config.json's sizes and digests).
   */
  @IsBoolean()
  @Transform(toBool)
  MODELS_FROM_STORAGE: boolean = true;

  /** Where versions downloaded from object storage are kept. */
  @IsString()
  @IsNotEmpty()
  MODEL_CACHE_DIR: string = './.model-cache';

  /**
   * What a worker loads and warms up at boot (it is not ready before): `declared`, the models its
   * served task types declare; `none`, nothing (models load on first use); or a comma-separated
   * list of model names, where `declared` may appear too (`declared,my-model`).
   */
  @Matches(/^(none|[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(,[A-Za-z0-9][A-Za-z0-9_.-]{0,99})*)$/, {
    message: 'MODEL_PRELOAD must be declared, none, or a comma-separated list of model names',
  })
  MODEL_PRELOAD: string = 'declared';

  /** Memory budget of loaded models, bytes; least recently used ones are evicted past it. */
  @IsInt()
  @Min(1024 * 1024)
  MODEL_CACHE_BYTES: number = 2 * 1024 * 1024 * 1024;

  // --- Image safety (safety_check) ---------------------------------------------------------

  /**
   * A task with `safety_check: true` whose output (or an input image) has an unsafe score (Porn +
   * Hentai + Sexy of the nsfw classifier) above this fails with content_blocked, not retried, its
   * output not stored. Unset: scores are reported, nothing is blocked.
   */
  @IsOptional()
  @IsNumber(
    { allowNaN: false, allowInfinity: false },
    { message: 'SAFETY_BLOCK_THRESHOLD must be a number from 0 to 1 (unset: never block)' },
  )
  @Min(0, { message: 'SAFETY_BLOCK_THRESHOLD must be a number from 0 to 1 (unset: never block)' })
  @Max(1, { message: 'SAFETY_BLOCK_THRESHOLD must be a number from 0 to 1 (unset: never block)' })
  SAFETY_BLOCK_THRESHOLD?: number;

  // --- Object storage (STORAGE_DRIVER=r2|s3) ------------------------------------------------

  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  R2_ENDPOINT?: string;

  @IsOptional()
  @IsString()
  R2_ACCESS_KEY?: string;

  @IsOptional()
  @IsString()
  R2_SECRET_KEY?: string;

  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, {
    message: 'R2_BUCKET_NAME must be a valid bucket name',
  })
  R2_BUCKET_NAME?: string;

  /** R2 uses "auto"; S3 its region. */
  @IsString()
  @IsNotEmpty()
  R2_REGION: string = 'auto';

  /** Public base of the bucket (custom domain); without it media_url is a presigned GET URL. */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  R2_PUBLIC_BASE_URL?: string;

  /** Path-style addressing (needed by most S3-compatible servers other than AWS and R2). */
  @Transform(toBool)
  @IsBoolean()
  R2_FORCE_PATH_STYLE: boolean = false;

  // --- PayloadCMS ---------------------------------------------------------------------------

  /** Base of Payload's REST API, e.g. https://main-app.com/api; unset: registration is skipped. */
  @IsOptional()
  @IsUrl({ require_tld: false, require_protocol: true, protocols: ['http', 'https'] })
  PAYLOAD_API_URL?: string;

  @IsOptional()
  @IsString()
  PAYLOAD_API_KEY?: string;

  /** Upload collection that receives the media. */
  @Matches(/^[a-z0-9][a-z0-9_-]{0,63}$/, {
    message: 'PAYLOAD_MEDIA_COLLECTION must be a collection slug',
  })
  PAYLOAD_MEDIA_COLLECTION: string = 'media';

  /** api-key: "Authorization: <PAYLOAD_AUTH_COLLECTION> API-Key <key>"; bearer: "Bearer <key>". */
  @Transform(lower)
  @IsIn(PAYLOAD_AUTH_SCHEMES)
  PAYLOAD_AUTH_SCHEME: PayloadAuthScheme = 'api-key';

  @Matches(/^[a-z0-9][a-z0-9_-]{0,63}$/, {
    message: 'PAYLOAD_AUTH_COLLECTION must be a collection slug',
  })
  PAYLOAD_AUTH_COLLECTION: string = 'users';

  @IsInt()
  @Min(100)
  @Max(600_000)
  PAYLOAD_TIMEOUT_MS: number = 30_000;

  // --- Retention (seed 001 Data Retention) ---------------------------------------------------

  /**
   * Days an ended task (completed, failed, cancelled) is kept after its end; then the workers'
   * retention sweeper removes its record, indexes and Idempotency-Key entry. Unset or 0: kept
   * forever (seed 001's default).
   */
  @IsOptional()
  @IsInt({
    message: 'TASK_RETENTION_DAYS must be a whole number of days (unset or 0: keep forever)',
  })
  @Min(0, {
    message: 'TASK_RETENTION_DAYS must be a whole number of days (unset or 0: keep forever)',
  })
  @Max(36_500, {
    message: 'TASK_RETENTION_DAYS must be at most 36500 days (unset or 0: keep forever)',
  })
  TASK_RETENTION_DAYS?: number;

  /**
   * Days an ended task's output is kept: the sweeper deletes it (local storage) or marks it gone
   * (r2/s3, whose bucket lifecycle rule deletes it). At most TASK_RETENTION_DAYS. Unset or 0:
   * kept forever.
   */
  @IsOptional()
  @IsInt({
    message: 'MEDIA_RETENTION_DAYS must be a whole number of days (unset or 0: keep forever)',
  })
  @Min(0, {
    message: 'MEDIA_RETENTION_DAYS must be a whole number of days (unset or 0: keep forever)',
  })
  @Max(36_500, {
    message: 'MEDIA_RETENTION_DAYS must be at most 36500 days (unset or 0: keep forever)',
  })
  MEDIA_RETENTION_DAYS?: number;

  /** How often the retention sweeper runs (ms), when a retention is set. */
  @IsInt()
  @Min(1000)
  @Max(86_400_000)
  RETENTION_INTERVAL_MS: number = 60_000;

  /** The most records one sweeper pass removes (and, apart, the most outputs it deletes). */
  @IsInt()
  @Min(1)
  @Max(100_000)
  RETENTION_BATCH: number = 500;

  // --- Operations ---------------------------------------------------------------------------

  /** Serve Prometheus metrics at /metrics (API port; worker health port). */
  @Transform(toBool)
  @IsBoolean()
  ENABLE_METRICS: boolean = true;

  /** Port of the worker's health and metrics endpoints (0: off). */
  @IsInt()
  @Min(0)
  @Max(65535)
  WORKER_HEALTH_PORT: number = 8002;

  /** Distinct project_id label values in metrics; the rest are counted as "other". */
  @IsInt()
  @Min(1)
  @Max(100_000)
  METRICS_PROJECT_LABEL_LIMIT: number = 100;

  /** Bull Board at /admin/queues (behind the API key, or basic auth below). */
  @Transform(toBool)
  @IsBoolean()
  BULL_BOARD_ENABLED: boolean = true;

  @Transform(toBool)
  @IsBoolean()
  BULL_BOARD_READ_ONLY: boolean = true;

  /** user:password for Bull Board basic auth instead of the API key. */
  @IsOptional()
  @Matches(/^[^:]+:.+$/, { message: 'BULL_BOARD_BASIC_AUTH must be user:password' })
  BULL_BOARD_BASIC_AUTH?: string;

  /** json (one object per line, for log shippers) or pretty (for a terminal). */
  @Transform(lower)
  @IsIn(LOG_FORMATS)
  LOG_FORMAT: LogFormat = 'json';
}
