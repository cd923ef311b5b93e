// A protobuf writer for one message at a time, into one growing buffer. A length-delimited field
// reserves one byte for its length and the message is moved right on the rare occasion that its
// length needs more, so each message is written in one pass, without sizing it first. ASCII strings
// (nearly every key, name and id in a trace) are copied a char at a time.
import type { HrTime } from '@opentelemetry/api';

/** Protobuf wire types. */
export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH = 2;
export const WIRE_FIXED32 = 5;

const HEX = ((): Int8Array => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i += 1) table[48 + i] = i;
  for (let i = 0; i < 6; i += 1) {
    table[97 + i] = 10 + i;
    table[65 + i] = 10 + i;
  }
  return table;
})();

export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(extra: number): void {
    const needed = this.pos + extra;
    if (needed <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buf.length * 2));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  tag(field: number, wire: number): void {
    const tag = field * 8 + wire;
    if (tag < 0x80) {
      this.ensure(1);
      this.buf[this.pos++] = tag;
    } else {
      this.varint(tag);
    }
  }

  /** A non-negative integer up to 2^53, or a negative one as 64-bit two's complement. */
  varint(value: number): void {
    if (value < 0) {
      this.negativeVarint(value);
      return;
    }
    if (value < 0x80) {
      this.ensure(1);
      this.buf[this.pos++] = value;
      return;
    }
    this.ensure(10);
    const { buf } = this;
    let pos = this.pos;
    while (value > 0x7f) {
      buf[pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    buf[pos++] = value;
    this.pos = pos;
  }

  private negativeVarint(value: number): void {
    let n = BigInt.asUintN(64, BigInt(value));
    this.ensure(10);
    while (n > 0x7fn) {
      this.buf[this.pos++] = Number(n & 0x7fn) | 0x80;
      n >>= 7n;
    }
    this.buf[this.pos++] = Number(n);
  }

  fixed32(value: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(value >>> 0, this.pos);
    this.pos += 4;
  }

  double(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  /** An HrTime as fixed64 nanoseconds since the epoch, exact (the product exceeds 2^53). */
  hrTime(time: HrTime): void {
    const [seconds, nanos] = time;
    const low16 = (seconds % 0x10000) * 1e9; // < 2^46
    const high = Math.floor(seconds / 0x10000) * 1e9; // < 2^53 for any 32-bit seconds
    const lowSum = (low16 % 0x100000000) + (high % 0x10000) * 0x10000 + nanos;
    const lo = lowSum % 0x100000000;
    const hi = Math.floor(low16 / 0x100000000) + Math.floor(high / 0x10000) + Math.floor(lowSum / 0x100000000);
    this.ensure(8);
    this.buf.writeUInt32LE(lo, this.pos);
    this.buf.writeUInt32LE(hi >>> 0, this.pos + 4);
    this.pos += 8;
  }

  string(value: string): void {
    const length = value.length;
    if (length < 0x80) {
      this.ensure(1 + length);
      const { buf } = this;
      let pos = this.pos + 1;
      for (let i = 0; i < length; i += 1) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) {
          this.utf8String(value);
          return;
        }
        buf[pos++] = code;
      }
      buf[this.pos] = length;
      this.pos = pos;
      return;
    }
    this.utf8String(value);
  }

  private utf8String(value: string): void {
    const bytes = Buffer.byteLength(value, 'utf8');
    this.varint(bytes);
    this.ensure(bytes);
    this.buf.write(value, this.pos, bytes, 'utf8');
    this.pos += bytes;
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** A trace or span id given in hex, as its bytes. */
  hexId(hex: string): void {
    const bytes = hex.length >> 1;
    this.ensure(1 + bytes);
    const { buf } = this;
    let pos = this.pos;
    buf[pos++] = bytes;
    for (let i = 0; i < bytes; i += 1) {
      const hi = HEX[hex.charCodeAt(2 * i)] ?? -1;
      const lo = HEX[hex.charCodeAt(2 * i + 1)] ?? -1;
      // What OpenTelemetry's hexToBinary makes of a digit that is not one: 0.
      buf[pos++] = ((hi < 0 ? 0 : hi) << 4) | (lo < 0 ? 0 : lo);
    }
    this.pos = pos;
  }

  /** Starts a length-delimited message; returns where its length goes. */
  begin(): number {
    this.ensure(1);
    const at = this.pos;
    this.pos += 1;
    return at;
  }

  /** Writes the length of the message begun at `at`, moving it right if the length needs more than one byte. */
  end(at: number): void {
    const length = this.pos - at - 1;
    if (length < 0x80) {
      this.buf[at] = length;
      return;
    }
    let extra = 0;
    for (let rest = Math.floor(length / 0x80); rest > 0; rest = Math.floor(rest / 0x80)) extra += 1;
    this.ensure(extra);
    this.buf.copyWithin(at + 1 + extra, at + 1, this.pos);
    const end = this.pos + extra;
    this.pos = at;
    this.varint(length);
    this.pos = end;
  }

  finish(): Uint8Array {
    // A copy of exactly the request: the transport may hold it for retries while the next batch
    // is written.
    return Uint8Array.prototype.slice.call(this.buf, 0, this.pos);
  }
}
