// Every environment variable a bullpen app reads, by app. The compose file, .env.example and
// the README's table are checked against this list, and loadConfig (and the CLI's loadCliConfig,
// in apps/cli) is checked to read nothing outside it, so a misspelt or stale variable cannot pass
// unnoticed.

export type AppName = 'api' | 'worker' | 'exporter' | 'cli';

const ALL: readonly AppName[] = ['api', 'worker', 'exporter'];

export const CONFIG_VARIABLES: Readonly<Record<string, readonly AppName[]>> = {
  REDIS_URL: ALL,
  REDIS_CLUSTER_NODES: ALL,
  REDIS_SENTINELS: ALL,
  REDIS_SENTINEL_MASTER: ALL,
  BULLPEN_PREFIX: ALL,
  LANES_FILE: ALL,
  LOG_LEVEL: ALL,
  HOST: ALL,
  PORT: ['api'],
  API_KEYS: ['api', 'exporter'],
  API_KEYS_FILE: ['api', 'exporter'],
  AUTH_DISABLED: ['api'],
  API_OPERATOR_TENANTS: ['api'],
  API_BODY_LIMIT_BYTES: ['api'],
  API_MAX_INFLIGHT_JOBS: ['api'],
  API_INFLIGHT_WAIT_MS: ['api'],
  API_KEEPALIVE_TIMEOUT_MS: ['api'],
  API_REDIS_WAIT_REPLICAS: ['api'],
  API_REDIS_WAIT_TIMEOUT_MS: ['api'],
  API_REDIS_MEMORY_LIMIT: ['api'],
  ADMIN_UI_PASSWORD: ['api'],
  ADMIN_UI_USER: ['api'],
  WORKER_LANES: ['worker'],
  WORKER_MAX_HANDLERS: ['worker'],
  WORKER_ID: ['worker'],
  WORKER_METRICS_PORT: ['worker'],
  WORKER_MAX_RSS_MB: ['worker'],
  WORKER_HEAP_WARN_MB: ['worker'],
  HANDLERS_DIR: ['worker'],
  SHUTDOWN_GRACE_MS: ['worker'],
  EVENT_LOG_FILE: ['worker', 'exporter'],
  EVENT_LOG_MAX_BYTES: ['worker', 'exporter'],
  EVENT_LOG_MAX_FILES: ['worker', 'exporter'],
  LOG_JOB_PAYLOADS: ['worker'],
  HTTP_HANDLER_ALLOWED_HOSTS: ['worker'],
  LOG_REDACT_KEYS: ['worker'],
  EVENTS_MAX_LEN: ALL,
  EXPORTER_PORT: ['exporter'],
  EXPORTER_JOB_NAMES: ['exporter'],
  EXPORTER_BATCH_SIZE: ['exporter'],
  EXPORTER_LEADER_LEASE_MS: ['exporter'],
  OTEL_SDK_DISABLED: ALL,
  OTEL_EXPORTER_OTLP_ENDPOINT: ALL,
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: ALL,
  OTEL_EXPORTER_OTLP_PROTOCOL: ALL,
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: ALL,
  OTEL_SERVICE_NAME: ALL,
  OTEL_TRACES_SAMPLER_ARG: ALL,
  OTEL_ATTRIBUTE_COUNT_LIMIT: ALL,
  OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: ALL,
  OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: ALL,
  OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: ALL,
  OTEL_SPAN_EVENT_COUNT_LIMIT: ALL,
  OTEL_SPAN_LINK_COUNT_LIMIT: ALL,
  OTEL_SPAN_ATTRIBUTE_PER_EVENT_COUNT_LIMIT: ALL,
  OTEL_SPAN_ATTRIBUTE_PER_LINK_COUNT_LIMIT: ALL,
  BULLPEN_API_URL: ['cli'],
  BULLPEN_API_KEY: ['cli'],
  BULLPEN_API_TIMEOUT_MS: ['cli'],
};

export function readsVariable(app: AppName, name: string): boolean {
  return CONFIG_VARIABLES[name]?.includes(app) ?? false;
}
