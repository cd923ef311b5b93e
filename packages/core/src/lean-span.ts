// A recording span that keeps what it records compactly until it is exported: OpenTelemetry's own
// span keeps about 1.6 KB of objects per span (an attributes object, an object, attributes object
// and HrTime array per event, HrTime arrays for its times, a status object), which a worker at
// 100% sampling holds for each of thousands of attempts a second until their batch is exported.
// This one keeps its times as milliseconds and its events in one flat array, and builds the
// shapes a span processor reads (ReadableSpan) only when asked.
import {
  INVALID_SPAN_CONTEXT,
  SamplingDecision,
  SpanStatusCode,
  TraceFlags,
  diag,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Exception,
  type HrTime,
  type Link,
  type Span,
  type SpanContext,
  type SpanKind,
  type SpanStatus,
  type TimeInput,
} from '@opentelemetry/api';
import { isAttributeValue, isTracingSuppressed, sanitizeAttributes } from '@opentelemetry/core';
import type { IdGenerator, ReadableSpan, Sampler, SpanProcessor, TimedEvent } from '@opentelemetry/sdk-trace-base';
import type { SpanLimits } from './config';

type Resource = ReadableSpan['resource'];
type Scope = ReadableSpan['instrumentationScope'];

export interface LeanSpanOptions {
  name: string;
  kind: SpanKind;
  spanContext: SpanContext;
  parentSpanContext: SpanContext | undefined;
  /** Owned by the span from here on (it records into this object). */
  attributes: Attributes;
  resource: Resource;
  scope: Scope;
  processor: SpanProcessor;
  limits: SpanLimits;
  context: Context;
}

const hasOwn = Object.prototype.hasOwnProperty;

/** Epoch milliseconds → HrTime, as OpenTelemetry's hrTime() rounds them. */
function msToHrTime(ms: number): HrTime {
  const seconds = Math.trunc(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return nanos >= 1e9 ? [seconds + 1, nanos - 1e9] : [seconds, nanos];
}

export class LeanSpan implements Span, ReadableSpan {
  readonly kind: SpanKind;
  readonly parentSpanContext: SpanContext | undefined;
  readonly resource: Resource;
  readonly instrumentationScope: Scope;
  readonly attributes: Attributes;
  name: string;
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  droppedAttributesCount = 0;
  droppedEventsCount = 0;
  droppedLinksCount = 0;

  private readonly ctx: SpanContext;
  private readonly processor: SpanProcessor;
  private readonly limits: SpanLimits;
  private attributeCount: number;
  /** Epoch ms at start, and performance.now() then: later times are measured from it. */
  private readonly startMs: number;
  private readonly startPerf: number;
  /** Epoch ms at end, set as end() begins; -1 before. */
  private endMs = -1;
  /** Set once span processors' onEnding hooks have run: the span no longer records. */
  private isEnded = false;
  /** Events as [name, epoch ms, attributes | undefined, dropped attributes] four slots each. */
  private readonly eventSlots: unknown[] = [];
  private linkList: Link[] | undefined;

  constructor(options: LeanSpanOptions) {
    this.name = options.name;
    this.kind = options.kind;
    this.ctx = options.spanContext;
    this.parentSpanContext = options.parentSpanContext;
    this.resource = options.resource;
    this.instrumentationScope = options.scope;
    this.processor = options.processor;
    this.limits = options.limits;
    this.startPerf = performance.now();
    this.startMs = Date.now();
    // The attributes it was given become its own when they need no sanitizing or limiting (a
    // worker's always do); otherwise they are set one by one, as the SDK sets them.
    const adopted = countIfClean(options.attributes, options.limits);
    if (adopted >= 0) {
      this.attributes = options.attributes;
      this.attributeCount = adopted;
    } else {
      this.attributes = {};
      this.attributeCount = 0;
      this.setAttributes(options.attributes);
    }
    options.processor.onStart(this, options.context);
  }

  spanContext(): SpanContext {
    return this.ctx;
  }

  isRecording(): boolean {
    return !this.isEnded;
  }

  private now(): number {
    return this.startMs + (performance.now() - this.startPerf);
  }

  private timeOf(input: TimeInput | undefined): number {
    if (input === undefined) return this.now();
    if (typeof input === 'number') {
      // A performance.now() reading, or epoch milliseconds (as OpenTelemetry tells them apart).
      return input <= performance.now() ? this.startMs + (input - this.startPerf) : input;
    }
    if (input instanceof Date) return input.getTime();
    return input[0] * 1000 + input[1] / 1e6;
  }

  private refuseEnded(operation: string): boolean {
    if (!this.isEnded) return false;
    diag.warn(`Cannot ${operation} on ended Span {traceId: ${this.ctx.traceId}, spanId: ${this.ctx.spanId}}`);
    return true;
  }

  private truncate(value: AttributeValue): AttributeValue {
    const limit = this.limits.attributeValueLengthLimit;
    if (!(limit > 0) || limit === Infinity) return value;
    if (typeof value === 'string') return value.length > limit ? value.slice(0, limit) : value;
    if (Array.isArray(value)) return value.map((v) => (typeof v === 'string' && v.length > limit ? v.slice(0, limit) : v)) as AttributeValue;
    return value;
  }

  setAttribute(key: string, value: AttributeValue): this {
    if (value == null || this.refuseEnded('setAttribute')) return this;
    if (key.length === 0 || !isAttributeValue(value)) {
      diag.warn(`Invalid attribute ${key}`);
      return this;
    }
    const isNew = !hasOwn.call(this.attributes, key);
    if (isNew && this.attributeCount >= this.limits.attributeCountLimit) {
      this.droppedAttributesCount += 1;
      return this;
    }
    this.attributes[key] = this.truncate(value);
    if (isNew) this.attributeCount += 1;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) {
      if (hasOwn.call(attributes, key)) this.setAttribute(key, attributes[key] as AttributeValue);
    }
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.refuseEnded('addEvent')) return this;
    const { eventCountLimit, attributePerEventCountLimit } = this.limits;
    if (eventCountLimit === 0) {
      this.droppedEventsCount += 1;
      return this;
    }
    if (this.eventSlots.length / 4 >= eventCountLimit) {
      this.eventSlots.splice(0, 4);
      this.droppedEventsCount += 1;
    }
    if (isTimeInput(attributesOrTime)) {
      if (!isTimeInput(time)) time = attributesOrTime;
      attributesOrTime = undefined;
    }
    const { kept, dropped } = attributesOrTime ? this.limited(attributesOrTime, attributePerEventCountLimit) : { kept: undefined, dropped: 0 };
    this.eventSlots.push(name, this.timeOf(time), kept, dropped);
    return this;
  }

  /** An event's or link's attributes as the SDK keeps them: valid ones only, at most `limit`, values truncated. */
  private limited(attributes: Attributes | undefined, limit: number): { kept: Attributes; dropped: number } {
    const sanitized = sanitizeAttributes(attributes);
    let count = 0;
    let dropped = 0;
    const kept: Attributes = {};
    for (const key in sanitized) {
      if (!hasOwn.call(sanitized, key)) continue;
      if (count >= limit) {
        dropped += 1;
        continue;
      }
      kept[key] = this.truncate(sanitized[key] as AttributeValue);
      count += 1;
    }
    return { kept, dropped };
  }

  addLink(link: Link): this {
    if (this.refuseEnded('addLink')) return this;
    const { linkCountLimit, attributePerLinkCountLimit } = this.limits;
    if (linkCountLimit === 0) {
      this.droppedLinksCount += 1;
      return this;
    }
    const links = (this.linkList ??= []);
    if (links.length >= linkCountLimit) {
      links.shift();
      this.droppedLinksCount += 1;
    }
    const { kept, dropped } = this.limited(link.attributes, attributePerLinkCountLimit);
    const processed: Link = { context: link.context };
    if (Object.keys(kept).length > 0) processed.attributes = kept;
    if (dropped > 0) processed.droppedAttributesCount = dropped;
    links.push(processed);
    return this;
  }

  addLinks(links: Link[]): this {
    for (const link of links) this.addLink(link);
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.refuseEnded('setStatus')) return this;
    if (status.code === SpanStatusCode.UNSET || this.status.code === SpanStatusCode.OK) return this;
    const next: SpanStatus = { code: status.code };
    if (status.code === SpanStatusCode.ERROR && typeof status.message === 'string') next.message = status.message;
    this.status = next;
    return this;
  }

  updateName(name: string): this {
    if (!this.refuseEnded('updateName')) this.name = name;
    return this;
  }

  recordException(exception: Exception, time?: TimeInput): void {
    const attributes: Attributes = {};
    if (typeof exception === 'string') {
      attributes['exception.message'] = exception;
    } else if (exception) {
      if (exception.code) attributes['exception.type'] = exception.code.toString();
      else if (exception.name) attributes['exception.type'] = exception.name;
      if (exception.message) attributes['exception.message'] = exception.message;
      if (exception.stack) attributes['exception.stacktrace'] = exception.stack;
    }
    if (attributes['exception.type'] || attributes['exception.message']) this.addEvent('exception', attributes, time);
    else diag.warn(`Failed to record an exception ${String(exception)}`);
  }

  end(endTime?: TimeInput): void {
    if (this.isEnded) {
      diag.error(`${this.name} ${this.ctx.traceId}-${this.ctx.spanId} - You can only call end() on a span once.`);
      return;
    }
    const endMs = this.timeOf(endTime);
    if (endMs < this.startMs) diag.warn('Inconsistent start and end time, startTime > endTime. Setting span duration to 0ms.');
    this.endMs = endMs < this.startMs ? this.startMs : endMs;
    // As the SDK's span: processors' onEnding sees the end time while the span still records.
    this.processor.onEnding?.(this);
    this.isEnded = true;
    this.processor.onEnd(this);
  }

  // ReadableSpan: the shapes a span processor or exporter reads, built when asked.

  get ended(): boolean {
    return this.isEnded;
  }

  get startTime(): HrTime {
    return msToHrTime(this.startMs);
  }

  get endTime(): HrTime {
    return this.endMs < 0 ? [0, 0] : msToHrTime(this.endMs);
  }

  get duration(): HrTime {
    return this.endMs < 0 ? [-1, -1] : msToHrTime(this.endMs - this.startMs);
  }

  get events(): TimedEvent[] {
    const slots = this.eventSlots;
    const events: TimedEvent[] = [];
    for (let i = 0; i < slots.length; i += 4) {
      events.push({
        name: slots[i] as string,
        time: msToHrTime(slots[i + 1] as number),
        attributes: (slots[i + 2] as Attributes | undefined) ?? {},
        droppedAttributesCount: slots[i + 3] as number,
      });
    }
    return events;
  }

  get links(): Link[] {
    return this.linkList ?? [];
  }
}

export interface LeanSpanSettings {
  sampler: Sampler;
  idGenerator: IdGenerator;
  processor: SpanProcessor;
  resource: ReadableSpan['resource'];
  scope: ReadableSpan['instrumentationScope'];
  limits: SpanLimits;
}

export class LeanSpanFactory {
  constructor(private readonly settings: LeanSpanSettings) {}

  /**
   * Starts a span as the SDK's tracer would (its trace from a valid parent in `parent`, else a new
   * one; the sampler's decision, attributes and trace state), recording into `attributes`, which
   * the span owns from here on. A span the sampler drops is a non-recording one that still carries
   * its context downstream.
   */
  start(name: string, kind: SpanKind, parent: Context, attributes: Attributes): Span {
    const { sampler, idGenerator, processor, resource, scope, limits } = this.settings;
    if (isTracingSuppressed(parent)) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const parentContext = trace.getSpanContext(parent);
    const spanId = idGenerator.generateSpanId();
    const validParent = parentContext && trace.isSpanContextValid(parentContext) ? parentContext : undefined;
    const traceId = validParent ? validParent.traceId : idGenerator.generateTraceId();
    const result = sampler.shouldSample(parent, traceId, name, kind, attributes, []);
    const spanContext: SpanContext = {
      traceId,
      spanId,
      traceFlags: result.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
      traceState: result.traceState ?? validParent?.traceState,
    };
    if (result.decision === SamplingDecision.NOT_RECORD) return trace.wrapSpanContext(spanContext);
    if (result.attributes) Object.assign(attributes, result.attributes);
    return new LeanSpan({ name, kind, spanContext, parentSpanContext: validParent, attributes, resource, scope, processor, limits, context: parent });
  }
}

/** How many attributes `attributes` holds if each is valid and none needs limiting, else -1. */
function countIfClean(attributes: Attributes, limits: SpanLimits): number {
  const valueLimit = limits.attributeValueLengthLimit;
  if (valueLimit > 0 && valueLimit !== Infinity) return -1;
  let count = 0;
  for (const key in attributes) {
    if (!hasOwn.call(attributes, key)) return -1;
    const value = attributes[key];
    if (key.length === 0 || value == null || !isAttributeValue(value)) return -1;
    count += 1;
  }
  return count <= limits.attributeCountLimit ? count : -1;
}

function isTimeInput(value: unknown): value is TimeInput {
  return typeof value === 'number' || value instanceof Date || (Array.isArray(value) && value.length === 2 && typeof value[0] === 'number');
}
