// Reads an OTLP/HTTP protobuf trace export (ExportTraceServiceRequest) into the shape of its OTLP
// JSON form, so that the bench's OTLP sink and the tests' stand-in collector read both encodings
// with one walk. Only what they look at is decoded: resources, scopes, and spans with their ids,
// name, kind, attributes, events and status; other fields are skipped by wire type.
'use strict';

/** A protobuf reader over one message's bytes. */
class Reader {
  constructor(buf, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.end = end;
  }

  done() {
    return this.pos >= this.end;
  }

  /** A varint as a BigInt (int64 attribute values can be negative or past 2^53). */
  varint() {
    let value = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.end) throw new Error('protobuf: truncated varint');
      const byte = this.buf[this.pos++];
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
      shift += 7n;
      if (shift > 63n) throw new Error('protobuf: varint longer than 10 bytes');
    }
  }

  uint() {
    return Number(this.varint());
  }

  /** The next field's number and wire type, or undefined at the end of the message. */
  tag() {
    if (this.done()) return undefined;
    const tag = this.uint();
    return { field: tag >>> 3, wire: tag & 7 };
  }

  /** A length-delimited field's bytes, as a reader of its own. */
  sub() {
    const length = this.uint();
    const start = this.pos;
    this.pos += length;
    if (this.pos > this.end) throw new Error('protobuf: truncated field');
    return new Reader(this.buf, start, this.pos);
  }

  bytes() {
    const r = this.sub();
    return this.buf.subarray(r.pos, r.end);
  }

  string() {
    return this.bytes().toString('utf8');
  }

  double() {
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  skip(wire) {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.sub();
    else if (wire === 5) this.pos += 4;
    else throw new Error(`protobuf: unsupported wire type ${wire}`);
    if (this.pos > this.end) throw new Error('protobuf: truncated field');
  }
}

/** Calls `onField(field, reader)` for each field, which returns true when it read the field. */
function eachField(reader, onField) {
  for (let t = reader.tag(); t; t = reader.tag()) {
    if (!onField(t.field, reader, t.wire)) reader.skip(t.wire);
  }
}

function message(reader, fields) {
  const out = {};
  eachField(reader, (field, r) => {
    const spec = fields[field];
    if (!spec) return false;
    const [name, read, repeated] = spec;
    const value = read(r);
    if (repeated) (out[name] ??= []).push(value);
    else out[name] = value;
    return true;
  });
  return out;
}

const hex = (r) => r.bytes().toString('hex');

function anyValue(r) {
  return message(r.sub(), {
    1: ['stringValue', (x) => x.string()],
    2: ['boolValue', (x) => x.varint() !== 0n],
    3: ['intValue', (x) => Number(BigInt.asIntN(64, x.varint()))],
    4: ['doubleValue', (x) => x.double()],
    5: ['arrayValue', (x) => message(x.sub(), { 1: ['values', anyValue, true] })],
    7: ['bytesValue', (x) => x.bytes().toString('base64')],
  });
}

const keyValue = (r) => message(r.sub(), { 1: ['key', (x) => x.string()], 2: ['value', anyValue] });

const event = (r) => message(r.sub(), { 2: ['name', (x) => x.string()], 3: ['attributes', keyValue, true] });

const status = (r) => message(r.sub(), { 2: ['message', (x) => x.string()], 3: ['code', (x) => x.uint()] });

const span = (r) =>
  message(r.sub(), {
    1: ['traceId', hex],
    2: ['spanId', hex],
    4: ['parentSpanId', hex],
    5: ['name', (x) => x.string()],
    6: ['kind', (x) => x.uint()],
    9: ['attributes', keyValue, true],
    11: ['events', event, true],
    15: ['status', status],
  });

const scopeSpans = (r) =>
  message(r.sub(), {
    1: ['scope', (x) => message(x.sub(), { 1: ['name', (y) => y.string()], 2: ['version', (y) => y.string()] })],
    2: ['spans', span, true],
  });

const resourceSpans = (r) =>
  message(r.sub(), {
    1: ['resource', (x) => message(x.sub(), { 1: ['attributes', keyValue, true] })],
    2: ['scopeSpans', scopeSpans, true],
  });

/** An ExportTraceServiceRequest body as `{ resourceSpans: [...] }`, the OTLP JSON shape. */
function decodeTraceRequest(body) {
  return message(new Reader(body), { 1: ['resourceSpans', resourceSpans, true] });
}

/** The body of an OTLP/HTTP trace export as the OTLP JSON shape, whichever encoding it came in. */
function readTraceRequest(contentType, body) {
  if (contentType.includes('protobuf')) return decodeTraceRequest(body);
  return JSON.parse(body.toString('utf8'));
}

module.exports = { decodeTraceRequest, readTraceRequest };
