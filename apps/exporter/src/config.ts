// The exporter's configuration: bullpen's shared settings (loadConfig) plus its own variables.
// The one place the exporter reads its environment.
import { assertAuthConfigured, configuredTenants, defaultMetricJobNames, failConfig, intVar, JOB_NAME, listVar, loadConfig, type BullpenConfig } from '@bullpen/core';

export interface ExporterConfig {
  readonly core: BullpenConfig;
  /**
   * EXPORTER_JOB_NAMES: comma-separated job names that appear as `job_name` label values; any
   * other name is counted as `other`. Default: the lanes' jobNames plus the built-in handlers.
   */
  readonly jobNames: readonly string[];
  /**
   * Tenants that appear as `tenant` label values: those of API_KEYS / API_KEYS_FILE at start (SIGHUP
   * re-reads API_KEYS_FILE: Exporter.replaceTenants).
   */
  readonly tenants: readonly string[];
  /** EXPORTER_BATCH_SIZE: stream entries read per lane per XREAD; default 1000. */
  readonly batchSize: number;
  /**
   * EXPORTER_LEADER_LEASE_MS: how long the leading exporter's lease lasts unless renewed (every
   * third of it); a standby takes over at most this long after the leader dies. Default 10000.
   */
  readonly leaderLeaseMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

export function loadExporterConfig(env: Env, options?: Parameters<typeof loadConfig>[1]): ExporterConfig {
  const core = loadConfig(env, options);
  // Without keys at all the exporter runs, counting every tenant as `other`; but API_KEYS_FILE is
  // judged as the API judges it, at start as on SIGHUP (reloadApiKeys): a file without a key, which
  // the API refuses, is refused here too rather than flattening every tenant into `other`.
  if (core.apiKeysFile !== undefined) assertAuthConfigured(core, core.apiKeys);
  // Naming no job at all would count every job as `other`.
  const jobNames = listVar(env, 'EXPORTER_JOB_NAMES', 'job names') ?? defaultMetricJobNames(core);
  for (const name of jobNames) {
    if (!JOB_NAME.test(name)) failConfig('EXPORTER_JOB_NAMES', `job names matching ${JOB_NAME.source}`, name);
  }
  const batchSize = intVar(env, 'EXPORTER_BATCH_SIZE', 1000, 1, 100_000);
  const leaderLeaseMs = intVar(env, 'EXPORTER_LEADER_LEASE_MS', 10_000, 1000, 600_000);
  return Object.freeze({
    core,
    jobNames: Object.freeze(jobNames),
    tenants: Object.freeze(configuredTenants(core)),
    batchSize,
    leaderLeaseMs,
  });
}
