// OpenTelemetry's standard variables for the sampler, the resource and the SDK's own log level,
// parsed as the specification describes them. Called by loadConfig only, with its environment; a
// value bullpen cannot honour is a ConfigError naming the variable, never a quiet fallback.
import { ConfigError } from './errors';

type Env = Readonly<Record<string, string | undefined>>;

/** The OTEL_TRACES_SAMPLER values bullpen honours: every sampler the specification defines in the SDK. */
export const TRACES_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;
export type TracesSampler = (typeof TRACES_SAMPLERS)[number];

/** Standard values that need a component bullpen does not ship (a remote sampling service). */
const UNSUPPORTED_SAMPLERS = new Set(['jaeger_remote', 'parentbased_jaeger_remote', 'xray']);

export interface SamplerSettings {
  readonly sampler: TracesSampler;
  /** The ratio of the traceidratio samplers, 0..1; 1 for the others. */
  readonly ratio: number;
}

function fail(name: string, expected: string, got: string): never {
  throw new ConfigError(`${name}: expected ${expected}, got ${JSON.stringify(got)}`);
}

const takesRatio = (sampler: TracesSampler) => sampler === 'traceidratio' || sampler === 'parentbased_traceidratio';

/**
 * OTEL_TRACES_SAMPLER (default parentbased_always_on) and OTEL_TRACES_SAMPLER_ARG (the ratio of the
 * traceidratio samplers, default 1). An argument without a sampler keeps what it has always meant
 * to bullpen, the ratio of parentbased_traceidratio; an argument beside a sampler that takes none
 * is refused, since the ratio it asks for would not be applied.
 */
export function samplerFromEnv(env: Env): SamplerSettings {
  const rawSampler = env.OTEL_TRACES_SAMPLER?.trim() ?? '';
  const rawArg = env.OTEL_TRACES_SAMPLER_ARG?.trim() ?? '';
  let sampler: TracesSampler;
  if (rawSampler === '') {
    sampler = rawArg === '' ? 'parentbased_always_on' : 'parentbased_traceidratio';
  } else if ((TRACES_SAMPLERS as readonly string[]).includes(rawSampler)) {
    sampler = rawSampler as TracesSampler;
  } else if (UNSUPPORTED_SAMPLERS.has(rawSampler)) {
    fail('OTEL_TRACES_SAMPLER', `one of ${TRACES_SAMPLERS.join(', ')} (${rawSampler} needs a sampling service bullpen does not support)`, rawSampler);
  } else {
    fail('OTEL_TRACES_SAMPLER', `one of ${TRACES_SAMPLERS.join(', ')}`, rawSampler);
  }
  if (rawArg === '') return { sampler, ratio: 1 };
  if (!takesRatio(sampler)) {
    fail('OTEL_TRACES_SAMPLER_ARG', `no value: only traceidratio and parentbased_traceidratio take one, and OTEL_TRACES_SAMPLER is ${sampler}`, rawArg);
  }
  const ratio = Number(rawArg);
  if (!(ratio >= 0 && ratio <= 1)) fail('OTEL_TRACES_SAMPLER_ARG', 'a number from 0 to 1', rawArg);
  return { sampler, ratio };
}

/** Longest key or value OTEL_RESOURCE_ATTRIBUTES may hold, as OpenTelemetry JS allows. */
const MAX_RESOURCE_ATTRIBUTE_LENGTH = 255;

/**
 * OTEL_RESOURCE_ATTRIBUTES: comma-separated key=value pairs, keys and values percent-decoded (a
 * ',' or '=' inside one must be encoded), empty entries skipped, with the syntax OpenTelemetry JS
 * accepts. Where the specification has the SDK discard a malformed value whole (which OpenTelemetry
 * JS does without a word), bullpen refuses to start and says what is wrong with it.
 */
export function resourceAttributesFromEnv(env: Env): Readonly<Record<string, string>> {
  const NAME = 'OTEL_RESOURCE_ATTRIBUTES';
  const raw = env[NAME] ?? '';
  const attributes: Record<string, string> = {};
  for (const entry of raw.split(',')) {
    if (entry.trim() === '') continue;
    const parts = entry.split('=');
    if (parts.length !== 2) fail(NAME, "comma-separated key=value pairs (',' and '=' inside a key or value percent-encoded as %2C and %3D)", entry);
    const [rawKey = '', rawValue = ''] = parts;
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(rawKey.trim());
      value = decodeURIComponent(rawValue.trim());
    } catch {
      fail(NAME, 'valid percent-encoding (%XX) in keys and values', entry);
    }
    if (key === '') fail(NAME, 'a key before each =', entry);
    if (key.length > MAX_RESOURCE_ATTRIBUTE_LENGTH || value.length > MAX_RESOURCE_ATTRIBUTE_LENGTH) {
      fail(NAME, `keys and values of at most ${MAX_RESOURCE_ATTRIBUTE_LENGTH} characters`, entry);
    }
    attributes[key] = value;
  }
  return Object.freeze(attributes);
}

/** OTEL_LOG_LEVEL's values, quietest first (the specification's, matched without regard to case). */
export const OTEL_LOG_LEVELS = ['none', 'error', 'warn', 'info', 'debug', 'verbose', 'all'] as const;
export type OtelLogLevel = (typeof OTEL_LOG_LEVELS)[number];

/** OTEL_LOG_LEVEL: how much of OpenTelemetry's own diagnostics reach the app's log; default warn. */
export function otelLogLevelFromEnv(env: Env): OtelLogLevel {
  const raw = env.OTEL_LOG_LEVEL?.trim() ?? '';
  if (raw === '') return 'warn';
  const level = raw.toLowerCase();
  if (!(OTEL_LOG_LEVELS as readonly string[]).includes(level)) fail('OTEL_LOG_LEVEL', OTEL_LOG_LEVELS.join(', '), raw);
  return level as OtelLogLevel;
}
