import { loadConfig } from './config';
import { createLogger } from './logger';
import { injectTraceContext, startTracing, tracer } from './tracing';

describe('tracing when disabled', () => {
  it('creates no spans and injects no context', async () => {
    const tracing = startTracing(loadConfig({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' }).tracing, 'x', createLogger('test'));
    expect(tracing.enabled).toBe(false);
    const span = tracer().startSpan('request');
    expect(span.isRecording()).toBe(false);
    expect(injectTraceContext()).toEqual({});
    span.end();
    await tracing.shutdown();
  });
});
