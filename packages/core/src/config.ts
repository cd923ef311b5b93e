// The one place bullpen reads its environment and files. Pure apart from reading the named files.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './errors';
import { boolVar, failConfig, intVar, listVar, numberVar, type Env } from './env-vars';
import { DEFAULT_LANES_FILE, LANE_NAME, lanesFileSchema, type LanePolicy } from './lanes';
import { parseApiKeys, type ApiKeyEntry } from './api-keys';
import { invalidAllowedHost } from './http-destinations';
import { DEFAULT_MARKER_CHECK_INTERVAL_MS } from './redis-data-loss';
import { describeRedisTarget, loadRedisTarget, type RedisTarget } from './redis-target';
import { otelLogLevelFromEnv, resourceAttributesFromEnv, samplerFromEnv, type OtelLogLevel, type TracesSampler } from './otel-env';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The repo's shipped lanes file; the same path from src/ and dist/. */
export const DEFAULT_LANES_PATH = path.resolve(__dirname, '../../../config/lanes.json');

/** LOG_REDACT_KEYS's default. */
export const DEFAULT_LOG_REDACT_KEYS = 'password,token,secret,authorization,apikey,cookie,credential';

/** API_KEEPALIVE_TIMEOUT_MS's default: longer than a load balancer's usual 60 s idle timeout. */
export const DEFAULT_API_KEEPALIVE_TIMEOUT_MS = 65_000;
/** API_REDIS_TIMEOUT_MS's default: an outage answers 503 within 2 s, as the API promises. */
export const DEFAULT_API_REDIS_TIMEOUT_MS = 1000;

export interface TracingConfig {
  /** On when an OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT or ..._TRACES_ENDPOINT) and OTEL_SDK_DISABLED is not true. */
  readonly enabled: boolean;
  /** OTEL_SERVICE_NAME; else a service.name in OTEL_RESOURCE_ATTRIBUTES; default bullpen-<app>. */
  readonly serviceName: string | undefined;
  /**
   * OTEL_TRACES_SAMPLER: which sampler decides for every span, the SDK's and the lean ones; default
   * parentbased_always_on, or parentbased_traceidratio when only OTEL_TRACES_SAMPLER_ARG is set.
   */
  readonly sampler: TracesSampler;
  /** OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio samplers, 0..1; default 1. */
  readonly sampleRatio: number;
  /** OTEL_RESOURCE_ATTRIBUTES: attributes of every span's resource (service.name aside); default none. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  /** OTEL_LOG_LEVEL: OpenTelemetry's own diagnostics logged at this level and above; default warn. */
  readonly logLevel: OtelLogLevel;
  /** OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL: how spans are encoded over
   * OTLP/HTTP; default http/protobuf, OpenTelemetry's default. */
  readonly protocol: OtlpProtocol;
  /** OpenTelemetry's span limits (OTEL_SPAN_*_LIMIT, OTEL_ATTRIBUTE_*_LIMIT), applied to every span. */
  readonly spanLimits: SpanLimits;
  /**
   * LOG_REDACT_KEYS (as logRedactKeys): query parameters of URLs recorded in spans (url.full) whose
   * key holds one of these have their value redacted, besides url-redaction.ts's fixed list.
   */
  readonly urlRedactKeys: ReadonlySet<string>;
}

/** OpenTelemetry's span limits, resolved as its SDK resolves them from the environment. */
export interface SpanLimits {
  /** OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, else OTEL_ATTRIBUTE_COUNT_LIMIT; default 128. */
  readonly attributeCountLimit: number;
  /** OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT, else OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT; default unlimited. */
  readonly attributeValueLengthLimit: number;
  /** OTEL_SPAN_EVENT_COUNT_LIMIT; default 128. */
  readonly eventCountLimit: number;
  /** OTEL_SPAN_LINK_COUNT_LIMIT; default 128. */
  readonly linkCountLimit: number;
  /** OTEL_SPAN_ATTRIBUTE_PER_EVENT_COUNT_LIMIT; default 128. */
  readonly attributePerEventCountLimit: number;
  /** OTEL_SPAN_ATTRIBUTE_PER_LINK_COUNT_LIMIT; default 128. */
  readonly attributePerLinkCountLimit: number;
}

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

export interface BullpenConfig {
  /**
   * Where Redis is: REDIS_URL (default redis://127.0.0.1:6379), or a Redis Cluster
   * (REDIS_CLUSTER_NODES), or a master found through Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_MASTER).
   */
  readonly redis: RedisTarget;
  /** BULLPEN_PREFIX: BullMQ key prefix; default "bullpen". */
  readonly prefix: string;
  /** PORT of the API; default 3000. */
  readonly port: number;
  /** HOST the API and metrics servers bind; default 0.0.0.0. */
  readonly host: string;
  /** LANES_FILE; default config/lanes.json of this repo. */
  readonly lanesFile: string;
  readonly lanes: Readonly<Record<string, LanePolicy>>;
  readonly laneNames: readonly string[];
  /** From the lanes file, or WORKER_MAX_HANDLERS; default 32. */
  readonly maxHandlersPerProcess: number;
  /**
   * API_KEYS / API_KEYS_FILE, as read at start. The API and the exporter re-read API_KEYS_FILE on
   * SIGHUP (reloadApiKeys), so what they use is in their own holder, not here.
   */
  readonly apiKeys: readonly ApiKeyEntry[];
  /** API_KEYS_FILE, resolved: the file reloadApiKeys re-reads; undefined when the keys come from API_KEYS (or none). */
  readonly apiKeysFile: string | undefined;
  /** AUTH_DISABLED=true turns authentication off (logged as a warning); default false. */
  readonly authDisabled: boolean;
  /**
   * API_OPERATOR_TENANTS: the tenants whose keys may pause and resume lanes, which stops or starts
   * a lane for every tenant, and see a lane's counts, which are of every tenant's jobs. Unset: any tenant when the keys name only one tenant, none otherwise
   * (see mayOperateLanes).
   */
  readonly apiOperatorTenants: ReadonlySet<string> | undefined;
  /** WORKER_LANES: lanes this worker serves; default all. */
  readonly workerLanes: readonly string[];
  /** LOG_LEVEL; default info. */
  readonly logLevel: LogLevel;
  /** API_BODY_LIMIT_BYTES; default 1 MiB. */
  readonly bodyLimitBytes: number;
  /** API_MAX_INFLIGHT_JOBS: jobs the API may have on their way to Redis at once; default 2000. */
  readonly apiMaxInflightJobs: number;
  /** API_INFLIGHT_WAIT_MS: how long a submission waits for room among them; default 5000. */
  readonly apiInflightWaitMs: number;
  /**
   * REDIS_MARKER_CHECK_INTERVAL_MS: how often every app reads bullpen's marker key between
   * reconnects, so that a flush of Redis is said (and a worker's lane caps written back) within
   * this long; default 30000 (redis-data-loss.ts).
   */
  readonly redisMarkerCheckIntervalMs: number;
  /**
   * API_KEEPALIVE_TIMEOUT_MS: how long the API keeps an idle client connection open; default
   * 65000, past the 60 s for which load balancers (AWS ALB, nginx) keep theirs, so that the API
   * never closes one just as the balancer sends a request on it (Node's own 5 s would).
   */
  readonly apiKeepAliveTimeoutMs: number;
  /**
   * API_REDIS_TIMEOUT_MS: how long the API waits for Redis to answer one call of a request (a
   * bulk submission's whole transaction included) before it answers 503 redis_timeout; default
   * 1000. A Redis far away or on a contended host may need more for bulks of 1,000 jobs.
   */
  readonly apiRedisTimeoutMs: number;
  /**
   * API_REDIS_WAIT_REPLICAS: replicas that must hold a job before the API answers 201 (Redis's
   * WAIT); default 0, the primary's acknowledgement alone. API_REDIS_WAIT_TIMEOUT_MS: how long the
   * API waits for them (default 500); fewer in time answer 503 redis_timeout naming the jobs.
   */
  readonly apiRedisWaitReplicas: number;
  readonly apiRedisWaitTimeoutMs: number;
  /**
   * API_REDIS_MEMORY_LIMIT: the share of Redis's maxmemory past which the API refuses new jobs
   * (503 redis_full), so that workers keep the rest to move queued jobs to their end; default
   * 0.9. 1 leaves it to Redis, which refuses writes only at maxmemory, workers' included.
   */
  readonly apiRedisMemoryLimit: number;
  /** SHUTDOWN_GRACE_MS: how long active jobs may finish after SIGTERM; default 30000. */
  readonly shutdownGraceMs: number;
  /** EXPORTER_PORT; default 9400. */
  readonly exporterPort: number;
  /** WORKER_METRICS_PORT: the worker's /metrics and /healthz; default 9464; 0 picks a free port. */
  readonly workerMetricsPort: number;
  /** HANDLERS_DIR: a folder of user handler modules the worker loads; default none. */
  readonly handlersDir: string | undefined;
  /** WORKER_ID: names this worker in attempt history and logs; default host name and pid. */
  readonly workerId: string;
  /**
   * EVENTS_MAX_LEN: approximate length each lane's event stream is kept at; default 300000,
   * about a minute of events at 5,000 jobs/s, so an exporter restart loses nothing.
   */
  readonly eventsMaxLen: number;
  /** WORKER_MAX_RSS_MB: the worker stops taking jobs above this RSS and resumes below 90%; default 512. */
  readonly workerMaxRssMb: number;
  /** WORKER_HEAP_WARN_MB: heap used above this logs a warning; default 400. */
  readonly workerHeapWarnMb: number;
  readonly tracing: TracingConfig;
  /** LOG_JOB_PAYLOADS=true logs job payloads and results at debug level, redacted; default false. */
  readonly logJobPayloads: boolean;
  /**
   * LOG_REDACT_KEYS: comma-separated keys whose values are redacted in logged payloads, matched
   * inside longer keys, ignoring case and punctuation (logger.ts redact); default
   * password,token,secret,authorization,apikey,cookie,credential. Empty is the default; commas alone
   * are refused (they would redact nothing).
   */
  readonly logRedactKeys: ReadonlySet<string>;
  /**
   * HTTP_HANDLER_ALLOWED_HOSTS: comma-separated host names, `*.`domains, IP addresses and CIDR
   * networks that the built-in http handler may call though they are not public; default none.
   */
  readonly httpHandlerAllowedHosts: readonly string[];
  /** EVENT_LOG_FILE: lifecycle event log (JSON lines); default off. */
  readonly eventLogFile: string | undefined;
  /** EVENT_LOG_MAX_BYTES: rotate the event log at this size; default 50 MiB. */
  readonly eventLogMaxBytes: number;
  /** EVENT_LOG_MAX_FILES: rotated event logs kept; default 5. */
  readonly eventLogMaxFiles: number;
  /** EVENT_LOG_MAX_BUFFERED_LINES: lines held in memory at most while the disk is slow or stuck;
   * past it new lines are dropped (and counted); default 100,000. */
  readonly eventLogMaxBufferedLines: number;
  /** ADMIN_UI_PASSWORD: enables bull-board at /admin/queues behind HTTP Basic auth; default off. */
  readonly adminUiPassword: string | undefined;
  /** ADMIN_UI_USER: the Basic auth user of the admin UI; default admin. */
  readonly adminUiUser: string;
}

export interface LoadConfigOptions {
  readFile?: (file: string) => string;
}

function tracingConfig(env: Env): Omit<TracingConfig, 'urlRedactKeys'> {
  const disabled = boolVar(env, 'OTEL_SDK_DISABLED', false);
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (endpoint) {
    try {
      new URL(endpoint);
    } catch {
      failConfig(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT', 'an http(s) URL', endpoint);
    }
  }
  const { sampler, ratio } = samplerFromEnv(env);
  const resourceAttributes = resourceAttributesFromEnv(env);
  return {
    enabled: !disabled && Boolean(endpoint),
    // As OpenTelemetry's environment detector has it, OTEL_SERVICE_NAME wins over the attribute.
    serviceName: env.OTEL_SERVICE_NAME || resourceAttributes['service.name'] || undefined,
    sampler,
    sampleRatio: ratio,
    resourceAttributes,
    logLevel: otelLogLevelFromEnv(env),
    protocol: otlpProtocol(env),
    spanLimits: Object.freeze(spanLimits(env)),
  };
}

function spanLimits(env: Env): SpanLimits {
  const limit = (name: string, fallback: number) => intVar(env, name, fallback, 0, 2 ** 31 - 1);
  return {
    attributeCountLimit: limit('OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT', limit('OTEL_ATTRIBUTE_COUNT_LIMIT', 128)),
    attributeValueLengthLimit: limit('OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT', limit('OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT', Infinity)),
    eventCountLimit: limit('OTEL_SPAN_EVENT_COUNT_LIMIT', 128),
    linkCountLimit: limit('OTEL_SPAN_LINK_COUNT_LIMIT', 128),
    attributePerEventCountLimit: limit('OTEL_SPAN_ATTRIBUTE_PER_EVENT_COUNT_LIMIT', 128),
    attributePerLinkCountLimit: limit('OTEL_SPAN_ATTRIBUTE_PER_LINK_COUNT_LIMIT', 128),
  };
}

function otlpProtocol(env: Env): OtlpProtocol {
  const name = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const raw = env[name];
  if (raw === undefined || raw === '') return 'http/protobuf';
  const value = raw.trim();
  // grpc is a protocol of OTLP too, but bullpen ships only the HTTP exporters.
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(value)) failConfig(name, `${OTLP_PROTOCOLS.join(' or ')} (grpc is not supported)`, raw);
  return value as OtlpProtocol;
}

function adminPassword(env: Env): string | undefined {
  const password = env.ADMIN_UI_PASSWORD;
  if (password === undefined || password === '') return undefined;
  if (password.length < 12) failConfig('ADMIN_UI_PASSWORD', 'at least 12 characters');
  return password;
}

function formatIssues(source: string, error: z.ZodError): string {
  return error.issues
    .map((issue) => `${source}: field "${issue.path.join('.') || '(root)'}": ${issue.message}`)
    .join('; ');
}

function readLanes(env: Env, readFile: (file: string) => string): { file: string; parsed: z.infer<typeof lanesFileSchema> } {
  const file = env.LANES_FILE ? path.resolve(env.LANES_FILE) : DEFAULT_LANES_PATH;
  const source = env.LANES_FILE ? `LANES_FILE (${file})` : `lanes file ${file}`;
  let raw: unknown;
  try {
    raw = JSON.parse(readFile(file));
  } catch (err) {
    if (!env.LANES_FILE && (err as NodeJS.ErrnoException).code === 'ENOENT') {
      // No file shipped beside this build (e.g. a trimmed image): the documented defaults apply.
      raw = DEFAULT_LANES_FILE;
    } else {
      throw new ConfigError(`${source}: expected a readable JSON file (${(err as Error).message})`);
    }
  }
  const result = lanesFileSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(formatIssues(source, result.error));
  return { file, parsed: result.data };
}

export function loadConfig(env: Env = process.env, options: LoadConfigOptions = {}): BullpenConfig {
  const readFile = options.readFile ?? ((file: string) => readFileSync(file, 'utf8'));

  const redis = loadRedisTarget(env);

  const prefix = env.BULLPEN_PREFIX || 'bullpen';
  // No braces: bullpen adds the lane's hash tag itself (keys.ts), and a second tag would win.
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) failConfig('BULLPEN_PREFIX', 'letters, digits, _ . - (1-64 chars)', prefix);

  const { file: lanesFile, parsed } = readLanes(env, readFile);
  const laneNames = Object.keys(parsed.lanes);

  const logLevel = (env.LOG_LEVEL || 'info').toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) failConfig('LOG_LEVEL', LOG_LEVELS.join(' | '), env.LOG_LEVEL);

  let workerLanes = laneNames;
  if (env.WORKER_LANES?.trim() !== '*') {
    // A value naming no lane (`,`) would start a worker that serves nothing.
    workerLanes = listVar(env, 'WORKER_LANES', `lanes from ${lanesFile}, or * for all`) ?? laneNames;
    for (const lane of workerLanes) {
      if (!LANE_NAME.test(lane) || !parsed.lanes[lane]) {
        failConfig('WORKER_LANES', `lanes from ${lanesFile} (${laneNames.join(', ')})`, lane);
      }
    }
  }

  let apiKeys: ApiKeyEntry[];
  let apiKeysFile: string | undefined;
  if (env.API_KEYS_FILE) {
    if (env.API_KEYS) failConfig('API_KEYS_FILE', 'API_KEYS or API_KEYS_FILE, not both');
    apiKeysFile = path.resolve(env.API_KEYS_FILE);
    apiKeys = readApiKeysFile(apiKeysFile, `API_KEYS_FILE (${env.API_KEYS_FILE})`, laneNames, readFile);
  } else {
    apiKeys = parseApiKeys(env.API_KEYS ?? '', 'API_KEYS', new Set(laneNames), 'list');
  }
  const apiOperatorTenants = listedOperatorTenants(env);
  checkOperatorTenants(apiOperatorTenants, apiKeys, apiKeysFile ? 'API_KEYS_FILE' : 'API_KEYS');
  const logRedactKeys: ReadonlySet<string> = new Set(
    (listVar(env, 'LOG_REDACT_KEYS', 'keys') ?? DEFAULT_LOG_REDACT_KEYS.split(',')).map((k) => k.toLowerCase()),
  );

  const config: BullpenConfig = {
    redis,
    prefix,
    port: intVar(env, 'PORT', 3000, 0, 65535),
    host: env.HOST || '0.0.0.0',
    lanesFile,
    lanes: Object.freeze({ ...parsed.lanes }),
    laneNames: Object.freeze([...laneNames]),
    maxHandlersPerProcess: intVar(env, 'WORKER_MAX_HANDLERS', parsed.maxHandlersPerProcess, 1, 10_000),
    apiKeys: Object.freeze(apiKeys),
    apiKeysFile,
    authDisabled: boolVar(env, 'AUTH_DISABLED', false),
    apiOperatorTenants,
    workerLanes: Object.freeze([...workerLanes]),
    logLevel: logLevel as LogLevel,
    bodyLimitBytes: intVar(env, 'API_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    apiMaxInflightJobs: intVar(env, 'API_MAX_INFLIGHT_JOBS', 2000, 1, 1_000_000),
    apiInflightWaitMs: intVar(env, 'API_INFLIGHT_WAIT_MS', 5000, 0, 600_000),
    redisMarkerCheckIntervalMs: intVar(env, 'REDIS_MARKER_CHECK_INTERVAL_MS', DEFAULT_MARKER_CHECK_INTERVAL_MS, 100, 3_600_000),
    apiKeepAliveTimeoutMs: intVar(env, 'API_KEEPALIVE_TIMEOUT_MS', DEFAULT_API_KEEPALIVE_TIMEOUT_MS, 1000, 3_600_000),
    apiRedisTimeoutMs: intVar(env, 'API_REDIS_TIMEOUT_MS', DEFAULT_API_REDIS_TIMEOUT_MS, 50, 60_000),
    apiRedisWaitReplicas: intVar(env, 'API_REDIS_WAIT_REPLICAS', 0, 0, 16),
    apiRedisWaitTimeoutMs: intVar(env, 'API_REDIS_WAIT_TIMEOUT_MS', 500, 1, 10_000),
    apiRedisMemoryLimit: numberVar(env, 'API_REDIS_MEMORY_LIMIT', 0.9, 0.1, 1),
    shutdownGraceMs: intVar(env, 'SHUTDOWN_GRACE_MS', 30_000, 0, 3_600_000),
    exporterPort: intVar(env, 'EXPORTER_PORT', 9400, 0, 65535),
    workerMetricsPort: intVar(env, 'WORKER_METRICS_PORT', 9464, 0, 65535),
    handlersDir: env.HANDLERS_DIR ? path.resolve(env.HANDLERS_DIR) : undefined,
    workerId: env.WORKER_ID || `${os.hostname()}:${process.pid}`,
    eventsMaxLen: intVar(env, 'EVENTS_MAX_LEN', 300_000, 1000, 100_000_000),
    workerMaxRssMb: intVar(env, 'WORKER_MAX_RSS_MB', 512, 16, 1_048_576),
    workerHeapWarnMb: intVar(env, 'WORKER_HEAP_WARN_MB', 400, 16, 1_048_576),
    tracing: Object.freeze({ ...tracingConfig(env), urlRedactKeys: logRedactKeys }),
    logJobPayloads: boolVar(env, 'LOG_JOB_PAYLOADS', false),
    logRedactKeys,
    httpHandlerAllowedHosts: Object.freeze(allowedHosts(env)),
    eventLogFile: env.EVENT_LOG_FILE ? path.resolve(env.EVENT_LOG_FILE) : undefined,
    eventLogMaxBytes: intVar(env, 'EVENT_LOG_MAX_BYTES', 50 * 1024 * 1024, 1024, 1024 ** 4),
    eventLogMaxFiles: intVar(env, 'EVENT_LOG_MAX_FILES', 5, 0, 1000),
    eventLogMaxBufferedLines: intVar(env, 'EVENT_LOG_MAX_BUFFERED_LINES', 100_000, 1, 10_000_000),
    adminUiPassword: adminPassword(env),
    adminUiUser: env.ADMIN_UI_USER || 'admin',
  };
  return Object.freeze(config);
}

/** API_OPERATOR_TENANTS as listed; undefined when unset. */
function listedOperatorTenants(env: Env): ReadonlySet<string> | undefined {
  // A value naming no tenant at all would quietly mean that no one may operate lanes, which unset does not.
  const listed = listVar(env, 'API_OPERATOR_TENANTS', 'tenants');
  return listed ? new Set(listed) : undefined;
}

/** API_OPERATOR_TENANTS: each must be the tenant of a configured key, or it names no one. */
function checkOperatorTenants(tenants: ReadonlySet<string> | undefined, apiKeys: readonly ApiKeyEntry[], keysVariable: string): void {
  if (!tenants || apiKeys.length === 0) return;
  const known = new Set(apiKeys.map((k) => k.tenant));
  for (const tenant of tenants) {
    if (!known.has(tenant)) failConfig('API_OPERATOR_TENANTS', `tenants of ${keysVariable} (${[...known].join(', ')})`, tenant);
  }
}

function readApiKeysFile(file: string, source: string, laneNames: readonly string[], readFile: (file: string) => string): ApiKeyEntry[] {
  let text: string;
  try {
    text = readFile(file);
  } catch (err) {
    throw new ConfigError(`${source}: expected a readable file (${(err as Error).message})`);
  }
  return parseApiKeys(text, source, new Set(laneNames), 'lines');
}

/**
 * Refuses keys nobody could call with, unless authentication is explicitly off: at the API's start,
 * and on every reload of API_KEYS_FILE (a file emptied by mistake would lock every caller out of
 * the API, and turn every tenant of the exporter into `other`).
 */
export function assertAuthConfigured(config: Pick<BullpenConfig, 'authDisabled' | 'apiKeysFile'>, apiKeys: readonly ApiKeyEntry[]): void {
  if (!config.authDisabled && apiKeys.length === 0) {
    const expected = config.apiKeysFile
      ? `API_KEYS_FILE (${config.apiKeysFile}): expected at least one tenant:key entry`
      : 'API_KEYS: expected at least one tenant:key entry (or API_KEYS_FILE)';
    throw new ConfigError(`${expected}; set AUTH_DISABLED=true to run without authentication`);
  }
}

/**
 * Re-reads API_KEYS_FILE (config.apiKeysFile) by the rules loadConfig read it with at start, the
 * lanes of lane-bound keys and API_OPERATOR_TENANTS included, and at least one key unless
 * AUTH_DISABLED (assertAuthConfigured): the keys to use from now on. Throws a
 * ConfigError naming the file and what is wrong with it, and never showing a key. Undefined when
 * the keys come from API_KEYS, which only a restart re-reads.
 */
export function reloadApiKeys(
  config: Pick<BullpenConfig, 'apiKeysFile' | 'laneNames' | 'apiOperatorTenants' | 'authDisabled'>,
  options: LoadConfigOptions = {},
): readonly ApiKeyEntry[] | undefined {
  const file = config.apiKeysFile;
  if (file === undefined) return undefined;
  const readFile = options.readFile ?? ((name: string) => readFileSync(name, 'utf8'));
  const apiKeys = readApiKeysFile(file, `API_KEYS_FILE (${file})`, config.laneNames, readFile);
  checkOperatorTenants(config.apiOperatorTenants, apiKeys, 'API_KEYS_FILE');
  assertAuthConfigured(config, apiKeys);
  return Object.freeze(apiKeys);
}

/**
 * Whether `tenant` may pause and resume lanes and see their lane-wide counts (GET /v1/lanes). A
 * paused lane is paused for every tenant, and its counts are of every tenant's jobs, so in a
 * deployment of several tenants only those API_OPERATOR_TENANTS names may; with keys of a single
 * tenant (or authentication off) that tenant is the operator unless the variable says otherwise.
 */
export function mayOperateLanes(config: Pick<BullpenConfig, 'apiOperatorTenants' | 'apiKeys' | 'authDisabled'>, tenant: string): boolean {
  if (config.apiOperatorTenants) return config.apiOperatorTenants.has(tenant);
  if (config.authDisabled) return true;
  return new Set(config.apiKeys.map((k) => k.tenant)).size <= 1;
}

/** The effective configuration for a startup log line, with secrets masked. */
export function describeConfig(config: BullpenConfig): Record<string, unknown> {
  return {
    redis: describeRedisTarget(config.redis),
    prefix: config.prefix,
    port: config.port,
    lanesFile: config.lanesFile,
    lanes: config.laneNames,
    workerLanes: config.workerLanes,
    maxHandlersPerProcess: config.maxHandlersPerProcess,
    authDisabled: config.authDisabled,
    apiOperatorTenants: config.apiOperatorTenants ? [...config.apiOperatorTenants] : null,
    apiKeys: config.apiKeys.map((k) => ({ tenant: k.tenant, key: '***', lanes: k.lanes ? [...k.lanes] : 'all' })),
    apiKeysFile: config.apiKeysFile ?? null,
    logLevel: config.logLevel,
    bodyLimitBytes: config.bodyLimitBytes,
    apiMaxInflightJobs: config.apiMaxInflightJobs,
    apiInflightWaitMs: config.apiInflightWaitMs,
    apiKeepAliveTimeoutMs: config.apiKeepAliveTimeoutMs,
    apiRedisWaitReplicas: config.apiRedisWaitReplicas,
    apiRedisWaitTimeoutMs: config.apiRedisWaitTimeoutMs,
    apiRedisMemoryLimit: config.apiRedisMemoryLimit,
    shutdownGraceMs: config.shutdownGraceMs,
    exporterPort: config.exporterPort,
    workerMetricsPort: config.workerMetricsPort,
    handlersDir: config.handlersDir ?? null,
    workerId: config.workerId,
    eventsMaxLen: config.eventsMaxLen,
    workerMaxRssMb: config.workerMaxRssMb,
    workerHeapWarnMb: config.workerHeapWarnMb,
    tracing: config.tracing,
    logJobPayloads: config.logJobPayloads,
    httpHandlerAllowedHosts: config.httpHandlerAllowedHosts,
    eventLogFile: config.eventLogFile ?? null,
    adminUi: config.adminUiPassword ? { user: config.adminUiUser, password: '***' } : 'off',
  };
}

/** HTTP_HANDLER_ALLOWED_HOSTS, each entry checked (http-destinations.ts). */
function allowedHosts(env: Env): string[] {
  const entries = (env.HTTP_HANDLER_ALLOWED_HOSTS ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  for (const entry of entries) {
    const invalid = invalidAllowedHost(entry);
    if (invalid) throw new ConfigError(`HTTP_HANDLER_ALLOWED_HOSTS: ${invalid}`);
  }
  return entries;
}
