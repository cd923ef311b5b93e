// The `http` handler's outbound call as a CLIENT span (OpenTelemetry HTTP conventions), a child of
// the attempt's span, with the W3C trace context written into the request's headers so that the
// service called joins the job's trace. With tracing off the span does not record and nothing is
// injected.
import { SpanKind, SpanStatusCode, context, propagation, trace, type Span, type TextMapSetter } from '@opentelemetry/api';
import { spanUrl, tracer } from '@bullpen/core';

const headerSetter: TextMapSetter<Headers> = {
  set: (headers, key, value) => headers.set(key, value),
};

/** Starts the span of one request and injects its context into `headers`. */
export function startClientSpan(method: string, url: string, headers: Headers): Span {
  const span = tracer().startSpan(method, { kind: SpanKind.CLIENT });
  if (span.isRecording()) {
    const target = new URL(url);
    span.setAttributes({
      'http.request.method': method,
      'url.full': spanUrl(target),
      'server.address': target.hostname,
      'server.port': Number(target.port) || (target.protocol === 'https:' ? 443 : 80),
    });
  }
  // A sampled-out span still carries its context, so the service called honours the decision.
  if (trace.isSpanContextValid(span.spanContext())) {
    propagation.inject(trace.setSpan(context.active(), span), headers, headerSetter);
  }
  return span;
}

export function recordResponse(span: Span, status: number): void {
  if (!span.isRecording()) return;
  span.setAttribute('http.response.status_code', status);
  if (status >= 400) {
    span.setAttribute('error.type', String(status));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
}

/** A request that got no (complete) response: `errorType` is the failure's error class. */
export function recordRequestError(span: Span, errorType: string, message: string): void {
  if (!span.isRecording()) return;
  span.setAttribute('error.type', errorType);
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}
