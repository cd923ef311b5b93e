// Keeps metric labels bounded: values outside a known set are folded into `other` (job names,
// tenants) or `unknown` (error classes), so no caller input can create new series.
import type { BullpenConfig } from './config';
import { ERROR_CLASSES, type ErrorClass } from './errors';

/** The label value every job name or tenant outside the allow-list is counted under. */
export const OTHER_LABEL_VALUE = 'other';

/** Handlers every bullpen worker has (foundation issue); always allowed as job_name values. */
export const BUILT_IN_JOB_NAMES = ['noop', 'sleep', 'cpu', 'fail', 'http'] as const;

/** The default job_name allow-list: the lanes' declared job names plus the built-ins. */
export function defaultMetricJobNames(config: Pick<BullpenConfig, 'lanes'>): string[] {
  const names = new Set<string>(BUILT_IN_JOB_NAMES);
  for (const policy of Object.values(config.lanes)) for (const name of policy.jobNames ?? []) names.add(name);
  return [...names];
}

/** The tenant every request acts as when authentication is off (AUTH_DISABLED=true). */
export const DEFAULT_TENANT = 'default';

/**
 * Tenants named in the API keys configuration, and `default` when authentication is off; only
 * these appear as `tenant` label values.
 */
export function configuredTenants(config: Pick<BullpenConfig, 'apiKeys' | 'authDisabled'>): string[] {
  const tenants = new Set(config.apiKeys.map((k) => k.tenant));
  if (config.authDisabled) tenants.add(DEFAULT_TENANT);
  return [...tenants];
}

const ERROR_CLASS_SET: ReadonlySet<string> = new Set(ERROR_CLASSES);

export class MetricLabels {
  private readonly jobNames: ReadonlySet<string>;
  /** Replaced whole when API_KEYS_FILE is reloaded (replaceTenants). */
  private tenants: ReadonlySet<string>;

  constructor(options: { jobNames: Iterable<string>; tenants: Iterable<string> }) {
    this.jobNames = new Set(options.jobNames);
    this.tenants = new Set(options.tenants);
  }

  /** The job_name values that can appear: the allow-list and `other`. */
  jobNameValues(): string[] {
    return [...this.jobNames, OTHER_LABEL_VALUE];
  }

  jobName(name: string | undefined): string {
    return name !== undefined && this.jobNames.has(name) ? name : OTHER_LABEL_VALUE;
  }

  /** The tenants counted under their own label from now on; others go on counting as `other`. */
  replaceTenants(tenants: Iterable<string>): void {
    this.tenants = new Set(tenants);
  }

  tenant(tenant: string | undefined): string {
    return tenant !== undefined && this.tenants.has(tenant) ? tenant : OTHER_LABEL_VALUE;
  }

  errorClass(errorClass: string | undefined): ErrorClass {
    return errorClass !== undefined && ERROR_CLASS_SET.has(errorClass) ? (errorClass as ErrorClass) : 'unknown';
  }
}
