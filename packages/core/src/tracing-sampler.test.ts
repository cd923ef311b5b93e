// OTEL_TRACES_SAMPLER picks the sampler of every span a process starts, the SDK tracer's and the
// lean attempt spans' alike; a sampler bullpen cannot run stops it at startup.
import { ROOT_CONTEXT, SpanKind, TraceFlags, context, propagation, trace, type Context } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { loadConfig } from './config';
import { ConfigError } from './errors';
import { createLogger } from './logger';
import { leanSpans, startTracing, tracer, type Tracing } from './tracing';

const sampledParent = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
});
const unsampledParent = trace.setSpanContext(ROOT_CONTEXT, { ...trace.getSpanContext(sampledParent)!, spanId: 'c7ad6b7169203332', traceFlags: TraceFlags.NONE });

describe('OTEL_TRACES_SAMPLER', () => {
  let tracing: Tracing | undefined;
  // A shut-down exporter takes no more spans: each case has its own.
  let exporter: InMemorySpanExporter;

  afterEach(async () => {
    await tracing?.shutdown();
    tracing = undefined;
    // Each case registers its own SDK as the global one.
    trace.disable();
    context.disable();
    propagation.disable();
  });

  /** Which of a root, a sampled-parent and an unsampled-parent span each kind of span records. */
  function decisions(env: Record<string, string>): { sdk: boolean[]; lean: boolean[] } {
    exporter = new InMemorySpanExporter();
    tracing = startTracing(loadConfig(env).tracing, 'bullpen-test', createLogger('test', 'error'), { exporter });
    const parents: Context[] = [ROOT_CONTEXT, sampledParent, unsampledParent];
    const sdk = parents.map((parent) => tracer().startSpan('s', { kind: SpanKind.SERVER }, parent));
    const lean = parents.map((parent) => leanSpans()!.start('l', SpanKind.CONSUMER, parent, {}));
    const recorded = [...sdk, ...lean].map((span) => span.isRecording());
    for (const span of [...sdk, ...lean]) span.end();
    expect(exporter.getFinishedSpans()).toHaveLength(recorded.filter(Boolean).length);
    return { sdk: recorded.slice(0, 3), lean: recorded.slice(3) };
  }

  it.each([
    // [sampler, root, under a sampled parent, under an unsampled parent]
    ['always_on', true, true, true],
    ['always_off', false, false, false],
    ['parentbased_always_on', true, true, false],
    ['parentbased_always_off', false, true, false],
  ])('samples as %s says, the SDK spans and the lean spans alike', (sampler, root, sampled, unsampled) => {
    const expected = [root, sampled, unsampled];
    expect(decisions({ OTEL_TRACES_SAMPLER: sampler })).toEqual({ sdk: expected, lean: expected });
  });

  it('samples by trace id alone with traceidratio, even under a sampled parent', () => {
    expect(decisions({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' })).toEqual({ sdk: [false, false, false], lean: [false, false, false] });
  });

  it('keeps parent-based sampling at the ratio when only OTEL_TRACES_SAMPLER_ARG is set, as before the sampler could be named', () => {
    expect(loadConfig({}).tracing).toMatchObject({ sampler: 'parentbased_always_on', sampleRatio: 1 });
    expect(loadConfig({ OTEL_TRACES_SAMPLER_ARG: '0.25' }).tracing).toMatchObject({ sampler: 'parentbased_traceidratio', sampleRatio: 0.25 });
    expect(decisions({ OTEL_TRACES_SAMPLER_ARG: '0' })).toEqual({ sdk: [false, true, false], lean: [false, true, false] });
  });

  it('refuses at startup a sampler bullpen cannot run, naming the variable', () => {
    for (const sampler of ['jaeger_remote', 'parentbased_jaeger_remote', 'xray']) {
      expect(() => loadConfig({ OTEL_TRACES_SAMPLER: sampler })).toThrow(ConfigError);
      expect(() => loadConfig({ OTEL_TRACES_SAMPLER: sampler })).toThrow(
        new RegExp(`^OTEL_TRACES_SAMPLER: expected one of always_on, .*\\(${sampler} needs a sampling service bullpen does not support\\), got "${sampler}"$`),
      );
    }
    expect(() => loadConfig({ OTEL_TRACES_SAMPLER: 'sometimes' })).toThrow(/^OTEL_TRACES_SAMPLER: expected one of .*got "sometimes"$/);
  });

  it('refuses a ratio beside a sampler that takes none, rather than not applying it', () => {
    expect(() => loadConfig({ OTEL_TRACES_SAMPLER: 'parentbased_always_on', OTEL_TRACES_SAMPLER_ARG: '0.1' })).toThrow(
      /^OTEL_TRACES_SAMPLER_ARG: expected no value: only traceidratio and parentbased_traceidratio take one, and OTEL_TRACES_SAMPLER is parentbased_always_on, got "0.1"$/,
    );
    expect(() => loadConfig({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: 'half' })).toThrow(/^OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1/);
  });
});
