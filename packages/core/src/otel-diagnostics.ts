// Where OpenTelemetry's own diagnostics go while tracing is on: the app's log. Without this the
// SDK reports nothing (its default logger is a no-op), so a collector that is down or refuses spans
// leaves users with no traces and no reason. Its messages are logged at OTEL_LOG_LEVEL and above,
// each repeated message once per window with a count; span export is watched so that a failing
// collector is one line, then one line a window while it keeps failing, and one when it works again.
// Loaded by startTracing only, with the SDK.
import { DiagLogLevel, ROOT_CONTEXT, context, diag, type DiagLogger } from '@opentelemetry/api';
import { ExportResultCode, setGlobalErrorHandler, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { describeThrown } from './errors';
import type { Logger } from './logger';
import type { OtelLogLevel } from './otel-env';
import { RepeatLimiter } from './repeat-limiter';

/** How often a message that keeps repeating, or an export that keeps failing, is logged again. */
export const OTEL_REPORT_INTERVAL_MS = 60_000;

const DIAG_LEVELS: Record<OtelLogLevel, DiagLogLevel> = {
  none: DiagLogLevel.NONE,
  error: DiagLogLevel.ERROR,
  warn: DiagLogLevel.WARN,
  info: DiagLogLevel.INFO,
  debug: DiagLogLevel.DEBUG,
  verbose: DiagLogLevel.VERBOSE,
  all: DiagLogLevel.ALL,
};

type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface OtelDiagnosticsOptions {
  /** Default OTEL_REPORT_INTERVAL_MS. */
  reportIntervalMs?: number;
  /** Clock of the outage's duration and report interval; default performance.now (a wall-clock step does not move it). */
  now?: () => number;
}

/** What is known of an export outage: since when, and what it has cost so far. */
interface Outage {
  sinceMs: number;
  lastReportMs: number;
  failedBatches: number;
  droppedSpans: number;
}

export class OtelDiagnostics {
  private readonly reportIntervalMs: number;
  private readonly now: () => number;
  private readonly repeats: RepeatLimiter;
  /** Export errors already reported here, which the SDK then hands to the global error handler too. */
  private readonly reported = new WeakSet<object>();
  private outage: Outage | undefined;

  constructor(
    private readonly logger: Logger,
    private readonly level: OtelLogLevel,
    options: OtelDiagnosticsOptions = {},
  ) {
    this.reportIntervalMs = options.reportIntervalMs ?? OTEL_REPORT_INTERVAL_MS;
    this.now = options.now ?? (() => performance.now());
    this.repeats = new RepeatLimiter({
      intervalMs: this.reportIntervalMs,
      onRepeats: (key, repeats) => {
        const [level, message] = splitKey(key);
        this.logger.log(level, 'opentelemetry: a message repeated', { otel_message: message, repeats, window_ms: this.reportIntervalMs });
      },
    });
  }

  /** Makes this OpenTelemetry's diagnostic logger and error handler (both global to the thread). */
  install(): void {
    if (this.level === 'none') diag.disable();
    else diag.setLogger(this.diagLogger(), { logLevel: DIAG_LEVELS[this.level], suppressOverrideMessage: true });
    setGlobalErrorHandler((err) => {
      if (typeof err === 'object' && err !== null && this.reported.has(err)) return;
      diag.error(describeThrown(err));
    });
  }

  /** `exporter`, with each export's outcome watched for the outage lines. */
  watch(exporter: SpanExporter): SpanExporter {
    return {
      export: (spans: ReadableSpan[], done: (result: ExportResult) => void) =>
        exporter.export(spans, (result) => {
          // Outside whatever span was active when the batch went out: the line is about no request.
          context.with(ROOT_CONTEXT, () => this.exported(spans.length, result));
          done(result);
        }),
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
  }

  /** Reports the repeats still counted and stops the window's timer. */
  close(): void {
    this.repeats.close();
  }

  private exported(spans: number, result: ExportResult): void {
    const now = this.now();
    if (result.code === ExportResultCode.SUCCESS) {
      const outage = this.outage;
      if (!outage) return;
      this.outage = undefined;
      this.logger.info('trace export works again', {
        failed_batches: outage.failedBatches,
        dropped_spans: outage.droppedSpans,
        failing_for_ms: now - outage.sinceMs,
      });
      return;
    }
    if (result.error) this.reported.add(result.error);
    const cause = errorFields(result.error);
    if (!this.outage) {
      this.outage = { sinceMs: now, lastReportMs: now, failedBatches: 1, droppedSpans: spans };
      this.logger.warn('trace export failing: spans are dropped until the collector takes them', { ...cause, dropped_spans: spans });
      return;
    }
    const outage = this.outage;
    outage.failedBatches += 1;
    outage.droppedSpans += spans;
    if (now - outage.lastReportMs < this.reportIntervalMs) return;
    outage.lastReportMs = now;
    this.logger.warn('trace export still failing', {
      ...cause,
      failed_batches: outage.failedBatches,
      dropped_spans: outage.droppedSpans,
      failing_for_ms: now - outage.sinceMs,
    });
  }

  private diagLogger(): DiagLogger {
    const at =
      (level: LogLevel) =>
      (message: string, ...args: unknown[]) =>
        this.write(level, [message, ...args.map((arg) => describeThrown(arg))].join(' '));
    return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), verbose: at('debug') };
  }

  private write(level: LogLevel, text: string): void {
    // Messages that differ only in their numbers (a count of dropped spans, a retry delay) are one.
    if (!this.repeats.admit(`${level} ${text.replace(/\d+/g, '#').slice(0, 300)}`)) return;
    context.with(ROOT_CONTEXT, () => this.logger.log(level, `opentelemetry: ${text}`));
  }
}

function splitKey(key: string): [LogLevel, string] {
  const space = key.indexOf(' ');
  const level = key.slice(0, space);
  // The RepeatLimiter's own catch-all key has no level.
  return ['error', 'warn', 'info', 'debug'].includes(level) ? [level as LogLevel, key.slice(space + 1)] : ['warn', key];
}


/** What an export failure says: the error, the collector's HTTP status and answer when it gave one. */
function errorFields(error: Error | undefined): Record<string, unknown> {
  if (!error) return { error: 'export failed' };
  const fields: Record<string, unknown> = { error: describeThrown(error) };
  const { code, data } = error as Error & { code?: unknown; data?: unknown };
  if (typeof code === 'number') fields.status = code;
  else if (typeof code === 'string') fields.code = code;
  if (typeof data === 'string' && data !== '') fields.response = data.slice(0, 300);
  return fields;
}
