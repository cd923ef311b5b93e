import { UsageError } from './config';
import { parseFailedBefore, parseIds } from './dead';

describe('parseFailedBefore', () => {
  it('takes a time in ms since the epoch, 0 included', () => {
    expect(parseFailedBefore('1764000123000')).toBe(1_764_000_123_000);
    expect(parseFailedBefore('0')).toBe(0);
  });

  it.each(['', ' ', '-1', '1.5', '1e12', 'now', '2025-11-24T16:00:00Z', '9007199254740992'])('refuses %j, naming the option', (text) => {
    expect(() => parseFailedBefore(text)).toThrow(UsageError);
    expect(() => parseFailedBefore(text)).toThrow(/^--failed-before: expected a time in ms since the epoch/);
  });
});

describe('parseIds', () => {
  it('takes comma-separated ids, blanks ignored', () => {
    expect(parseIds(' a, b,,c ')).toEqual(['a', 'b', 'c']);
  });

  it('refuses an id given twice, which calls of at most 1000 ids would act on twice', () => {
    expect(() => parseIds('a,b,a')).toThrow('--ids: "a" is given twice');
  });
});
