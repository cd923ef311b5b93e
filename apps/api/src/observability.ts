// The API's own metrics (request rate, errors and duration by route template; admission
// rejections; jobs on their way to Redis) and its OpenTelemetry server span, in one middleware
// at the front of the app.
import { SpanKind, SpanStatusCode, context, propagation, trace, type Span } from '@opentelemetry/api';
import type { Request, RequestHandler, Response } from 'express';
import { Registry } from 'prom-client';
import { METRIC_CATALOGUE, collectProcessMetrics, createMetrics, tracer, type MetricSet } from '@bullpen/core';
import type { JobsInFlight } from './jobs-in-flight';

/** Why admission refuses jobs: the `reason` values of bullpen_api_admission_rejected_total. */
export const ADMISSION_REJECT_REASONS = ['queue_full', 'api_overloaded', 'redis_full'] as const;

/**
 * @param lanes the configured lanes: each lane's admission rejections exist at 0 from the start,
 *              so BullpenApiOverloaded's increase() sees the first burst of refusals too.
 */
export function createApiMetrics(inFlight: JobsInFlight, lanes: readonly string[]): MetricSet {
  const registry = new Registry();
  collectProcessMetrics(registry);
  const metrics = createMetrics(
    registry,
    METRIC_CATALOGUE.filter((def) => def.origin === 'api' || def.origin === 'every-process'),
    {
      collectors: {
        bullpen_api_jobs_in_flight: (gauge) => gauge.set(inFlight.current),
        bullpen_api_submissions_waiting: (gauge) => gauge.set(inFlight.queued),
      },
    },
  );
  const rejected = metrics.counter('bullpen_api_admission_rejected_total');
  for (const lane of lanes) for (const reason of ADMISSION_REJECT_REASONS) rejected.inc({ lane, reason }, 0);
  metrics.counter('bullpen_redis_data_lost_total').inc(0);
  return metrics;
}

const mountKey = Symbol('bullpen.mount');

/**
 * Remembers where a router is mounted: Express restores req.baseUrl when an error leaves the
 * router, so by the time an error answer finishes the mount path would be lost.
 */
export function markMount(): RequestHandler {
  return (req, res, next) => {
    (res.locals as Record<symbol, string>)[mountKey] = req.baseUrl;
    next();
  };
}

/** The route template a request matched (never its raw path: ids must not become labels). */
function routeOf(req: Request, res: Response): string {
  const mount = (res.locals as Record<symbol, string | undefined>)[mountKey];
  const route = (req as Request & { route?: { path?: unknown } }).route;
  if (route && typeof route.path === 'string') return `${mount ?? req.baseUrl}${route.path}`;
  return mount ? `${mount}/*` : 'unmatched';
}

const spanKey = Symbol('bullpen.serverSpan');

/** The request's server span, for code that links to it (bulk producer spans). */
export function serverSpanOf(res: Response): Span | undefined {
  return (res.locals as Record<symbol, Span | undefined>)[spanKey];
}

/**
 * The status label of a request whose client closed the connection before the whole response was
 * sent: nginx's 499 ("client closed request"), which Prometheus users know from its logs and
 * exporters. No response carries it; it is never a 4xx the API answered.
 */
export const CLIENT_CLOSED_STATUS = 499;
/** The server span's error.type for such a request. */
export const CLIENT_CLOSED_ERROR_TYPE = 'client_closed';

/**
 * The `method` label's values: the methods the API has routes for or answers (405, OPTIONS). Any
 * other method Node accepts (PROPFIND, MKCOL, SUBSCRIBE, ... some 30) is counted as `other`: the
 * label is set before authentication, so anyone could otherwise multiply the API's series.
 */
export const METHOD_LABELS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function methodLabel(method: string): string {
  return METHOD_LABELS.has(method) ? method : 'other';
}

export function observe(metrics: MetricSet): RequestHandler {
  const requests = metrics.counter('bullpen_api_requests_total');
  const duration = metrics.histogram('bullpen_api_request_duration_seconds');
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    const parent = propagation.extract(context.active(), req.headers);
    const span = tracer().startSpan(
      `${req.method}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': req.method, 'url.path': req.path, 'url.scheme': 'http' },
      },
      parent,
    );
    (res.locals as Record<symbol, Span>)[spanKey] = span;
    let recorded = false;
    // Once per request: 'close' follows 'finish' too, and comes alone when the client left first.
    const record = (abandoned: boolean) => {
      if (recorded) return;
      recorded = true;
      const route = routeOf(req, res);
      const status = String(abandoned ? CLIENT_CLOSED_STATUS : res.statusCode);
      const labels = { route, method: methodLabel(req.method), status };
      requests.inc(labels);
      duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      if (span.isRecording()) {
        span.updateName(route === 'unmatched' ? req.method : `${req.method} ${route}`);
        span.setAttribute('http.route', route);
        if (abandoned) {
          if (res.headersSent) span.setAttribute('http.response.status_code', res.statusCode);
          span.setAttribute('error.type', CLIENT_CLOSED_ERROR_TYPE);
          span.setStatus({ code: SpanStatusCode.ERROR, message: 'the client closed the connection before the response was sent' });
        } else {
          span.setAttribute('http.response.status_code', res.statusCode);
          if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
        }
      }
      span.end();
    };
    // A request whose body never came in full was left by its client too, though the API's answer
    // to the broken body may still have been handed to the closing socket.
    res.once('finish', () => record(req.readableAborted));
    res.once('close', () => record(!res.writableFinished || req.readableAborted));
    context.with(trace.setSpan(parent, span), next);
  };
}

/** GET /metrics: this process's registry in the Prometheus text format. */
export function metricsHandler(metrics: MetricSet): RequestHandler {
  return async (_req, res) => {
    res.setHeader('content-type', metrics.registry.contentType);
    res.status(200).send(await metrics.registry.metrics());
  };
}
