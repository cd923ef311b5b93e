import fc from 'fast-check';
import { LineRanges } from './line-ranges';

describe('LineRanges', () => {
  it('names any set of lines, added in any order, as the sorted ranges they make', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 80 }), (lines) => {
        const ranges = new LineRanges();
        for (const line of lines) ranges.add(line);
        const sorted = [...new Set(lines)].sort((a, b) => a - b);
        const expected: string[] = [];
        for (let i = 0; i < sorted.length; ) {
          let j = i;
          while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j += 1;
          expected.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
          i = j + 1;
        }
        expect(ranges.format(1000)).toBe(expected.join(', '));
        expect(ranges.size).toBe(sorted.length);
      }),
    );
  });

  it('shows the first ranges and counts the rest', () => {
    const ranges = new LineRanges();
    for (const line of [1, 2, 3, 5, 7, 9]) ranges.add(line);
    expect(ranges.format(2)).toBe('1-3, 5 and 2 more ranges');
  });
});
