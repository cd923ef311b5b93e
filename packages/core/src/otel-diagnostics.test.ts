// OpenTelemetry's diagnostics in the app's log: at OTEL_LOG_LEVEL and above, a repeated message
// once a window, and an export outage as one line, one more a window while it lasts, and one at
// its end.
import { diag } from '@opentelemetry/api';
import { ExportResultCode, globalErrorHandler, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { createLogger } from './logger';
import { OtelDiagnostics } from './otel-diagnostics';
import type { OtelLogLevel } from './otel-env';

const WINDOW_MS = 60_000;

function setup(level: OtelLogLevel = 'warn') {
  const logger = createLogger('test', 'debug');
  for (const transport of logger.transports) transport.silent = true;
  const lines: Array<Record<string, unknown>> = [];
  logger.on('data', (info: Record<string, unknown>) => lines.push({ level: info.level, msg: info.message, ...info }));
  let now = 1_000_000;
  const diagnostics = new OtelDiagnostics(logger, level, { reportIntervalMs: WINDOW_MS, now: () => now });
  diagnostics.install();
  const results: ExportResult[] = [];
  const inner: SpanExporter = { export: (_spans, done) => done(results.shift()!), shutdown: async () => undefined };
  const exporter = diagnostics.watch(inner);
  const exportBatch = (result: ExportResult) => {
    results.push(result);
    exporter.export([{} as ReadableSpan, {} as ReadableSpan], (r) => {
      // As the BatchSpanProcessor does with a failed export's error.
      if (r.code !== ExportResultCode.SUCCESS) globalErrorHandler(r.error ?? new Error('export failed'));
    });
  };
  return { lines, diagnostics, exportBatch, advance: (ms: number) => (now += ms) };
}

describe('OpenTelemetry diagnostics', () => {
  afterEach(() => diag.disable());

  it('reports a failing collector once, again once a window while it fails, and when export works again', () => {
    const { lines, diagnostics, exportBatch, advance } = setup();
    const refused = () => ({ code: ExportResultCode.FAILED, error: Object.assign(new Error('Bad Request'), { code: 400, data: 'no' }) });
    for (let i = 0; i < 20; i++) exportBatch(refused());
    expect(lines).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'trace export failing: spans are dropped until the collector takes them', error: 'Bad Request', status: 400, response: 'no', dropped_spans: 2 }),
    ]);
    advance(WINDOW_MS);
    for (let i = 0; i < 20; i++) exportBatch(refused());
    expect(lines.slice(1)).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'trace export still failing', failed_batches: 21, dropped_spans: 42, failing_for_ms: WINDOW_MS }),
    ]);
    advance(1000);
    exportBatch({ code: ExportResultCode.SUCCESS });
    exportBatch({ code: ExportResultCode.SUCCESS });
    expect(lines.slice(2)).toEqual([
      expect.objectContaining({ level: 'info', msg: 'trace export works again', failed_batches: 40, dropped_spans: 80, failing_for_ms: WINDOW_MS + 1000 }),
    ]);
    diagnostics.close();
  });

  it('logs OpenTelemetry messages at OTEL_LOG_LEVEL and above, a message repeating with other numbers once a window', () => {
    const { lines, diagnostics } = setup('warn');
    diag.info('an info message');
    for (let i = 1; i <= 5; i++) diag.warn(`Dropped ${i * 100} spans because maxQueueSize reached`);
    diag.error('a failure', new Error('boom'));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'opentelemetry: Dropped 100 spans because maxQueueSize reached'],
      ['error', 'opentelemetry: a failure boom'],
    ]);
    diagnostics.close();
    expect(lines.slice(2)).toEqual([expect.objectContaining({ level: 'warn', msg: 'opentelemetry: a message repeated', repeats: 4 })]);
  });

  it('logs nothing of OpenTelemetry with OTEL_LOG_LEVEL=none', () => {
    const { lines, diagnostics } = setup('none');
    diag.error('a failure');
    globalErrorHandler(new Error('an error'));
    expect(lines).toEqual([]);
    diagnostics.close();
  });
});
