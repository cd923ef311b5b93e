import { PermanentError } from '@bullpen/core';
import { resultJson, storedProgress, storedResult } from './stored-json';

describe('what is stored of a result and of progress', () => {
  it('is the JSON form: functions and symbols dropped, toJSON applied', () => {
    expect(storedResult('h', { ok: true, f() {} })).toEqual({ ok: true });
    expect(storedResult('h', Buffer.from('ab'))).toEqual({ type: 'Buffer', data: [97, 98] });
    expect(storedResult('h', () => 1)).toBeUndefined();
    expect(resultJson('h', Symbol('s'))).toBeUndefined();
    expect(storedProgress('h', { step: 2, f() {} })).toEqual({ step: 2 });
    expect(storedProgress('h', 40)).toBe(40);
  });

  it('refuses a result JSON cannot hold, for good, naming the handler', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    for (const value of [{ n: 10n }, cycle]) {
      expect(() => storedResult('resize', value)).toThrow(PermanentError);
      expect(() => storedResult('resize', value)).toThrow(/handler "resize" returned a value that cannot be stored as JSON/);
    }
  });

  it('refuses progress JSON cannot hold or has no form for, as a validation error', () => {
    for (const value of [10n, () => 1, Symbol('s')]) {
      let thrown: unknown;
      try {
        storedProgress('resize', value as never);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(PermanentError);
      expect(thrown).toMatchObject({ errorClass: 'validation', message: expect.stringContaining('handler "resize" reported progress') });
    }
  });
});
