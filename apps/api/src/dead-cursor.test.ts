import { randomBytes } from 'node:crypto';
import { openDeadCursor, sealDeadCursor } from './dead-cursor';

describe('dead-letter cursor', () => {
  const key = randomBytes(32);
  const scope = { tenant: 'acme', lane: 'tool_call' };

  it('opens what it sealed, ids with any characters included, and shows neither id nor time', () => {
    for (const cursor of [
      { score: 1_700_000_000_123, id: 'a1b2-c3' },
      { score: 1_700_000_000_456, id: 'id with spaces/and:colons' },
      { score: 0, id: 'x' },
    ]) {
      const text = sealDeadCursor(key, cursor, scope);
      expect(text).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(openDeadCursor(key, text, scope)).toEqual(cursor);
      // Random bytes hold a short text such as "0" or "x" by chance: only long ones tell.
      if (cursor.score === 0) continue;
      const plain = Buffer.from(text, 'base64url').toString('latin1');
      expect([plain.includes(cursor.id), plain.includes(String(cursor.score))]).toEqual([false, false]);
    }
  });

  it('never begins a cursor with a dash or an underscore, which a command line would take for an option', () => {
    // One cursor in 32 began with one when the IV was left as drawn: 2,000 would hold ~62 of them.
    const leads = new Set<string>();
    for (let i = 0; i < 2000; i += 1) leads.add(sealDeadCursor(key, { score: i, id: 'x' }, scope)[0] ?? '');
    expect([...leads].filter((c) => !/[A-Za-z0-9]/.test(c))).toEqual([]);
    expect(leads.size).toBeGreaterThan(20);
  });

  it('refuses a cursor sealed for another tenant or lane, or with another key', () => {
    const text = sealDeadCursor(key, { score: 1, id: 'x' }, scope);
    expect(openDeadCursor(key, text, { ...scope, tenant: 'beta' })).toBeUndefined();
    expect(openDeadCursor(key, text, { ...scope, lane: 'critic' })).toBeUndefined();
    // A tenant and lane that run together the same way are still different ones.
    expect(openDeadCursor(key, sealDeadCursor(key, { score: 1, id: 'x' }, { tenant: 'a', lane: 'bc' }), { tenant: 'ab', lane: 'c' })).toBeUndefined();
    expect(openDeadCursor(randomBytes(32), text, scope)).toBeUndefined();
  });

  it('refuses text that is not a cursor it sealed, or one changed in any byte', () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    for (const text of ['', 'not a cursor', '%%%', b64({ score: 1, id: 'x' }), b64([1, 'x']), b64([1]), 'eyJ']) {
      expect([text, openDeadCursor(key, text, scope)]).toEqual([text, undefined]);
    }
    const raw = Buffer.from(sealDeadCursor(key, { score: 1, id: 'x' }, scope), 'base64url');
    for (let i = 0; i < raw.length; i += 1) {
      const changed = Buffer.from(raw);
      changed[i] = (changed[i] ?? 0) ^ 1;
      expect([i, openDeadCursor(key, changed.toString('base64url'), scope)]).toEqual([i, undefined]);
    }
  });
});
