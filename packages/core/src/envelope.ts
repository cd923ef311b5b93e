// What bullpen stores as a BullMQ job's data: the user's payload plus bullpen's metadata.
// Jobs added by plain BullMQ producers (no `bullpen` field) are read as bare payloads.

export interface JobMeta {
  /** Envelope version. */
  v: 1;
  tenant: string;
  /** Epoch ms after which no attempt may start (schedule-to-close). */
  deadlineAt?: number;
  /** Epoch ms of the last redrive from the dead letters: the job became eligible to run again then. */
  redrivenAt?: number;
  /** Per-job attempt timeout override. */
  timeoutMs?: number;
  /** Trace context carriers (W3C traceparent/tracestate). */
  trace?: Record<string, string>;
}

export interface JobEnvelope<T = unknown> {
  data: T;
  bullpen: JobMeta;
}

export function wrapJobData<T>(data: T, meta: JobMeta): JobEnvelope<T> {
  return { data, bullpen: meta };
}

function isMeta(value: unknown): value is JobMeta {
  return (
    typeof value === 'object' && value !== null && (value as JobMeta).v === 1 && typeof (value as JobMeta).tenant === 'string'
  );
}

export function unwrapJobData(raw: unknown): { data: unknown; meta: JobMeta | undefined } {
  if (typeof raw === 'object' && raw !== null && 'bullpen' in raw && isMeta((raw as JobEnvelope).bullpen)) {
    const env = raw as JobEnvelope;
    return { data: env.data, meta: env.bullpen };
  }
  return { data: raw, meta: undefined };
}
