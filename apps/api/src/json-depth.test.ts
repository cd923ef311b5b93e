import { nestsAtMost } from './json-depth';

/** `levels` arrays, each holding the next: `[[[]]]` for 3. */
function nestedArrays(levels: number): unknown {
  return JSON.parse('['.repeat(levels) + ']'.repeat(levels));
}

describe('nestsAtMost', () => {
  it('counts each array or object around a value as one level, and a scalar as none', () => {
    for (const scalar of [null, 0, 'text', true]) expect(nestsAtMost(scalar, 0)).toBe(true);
    expect(nestsAtMost({}, 0)).toBe(false);
    expect(nestsAtMost({}, 1)).toBe(true);
    expect(nestsAtMost([1, 'a', null], 1)).toBe(true);
    expect(nestsAtMost({ a: [1] }, 1)).toBe(false);
    expect(nestsAtMost({ a: [1] }, 2)).toBe(true);
  });

  it('finds the deepest branch wherever it is', () => {
    const value = { shallow: [1], deep: [{ x: 1 }, [{ y: [[1]] }]], last: {} };
    expect(nestsAtMost(value, 5)).toBe(false);
    expect(nestsAtMost(value, 6)).toBe(true);
  });

  it('accepts exactly the bound and refuses one level more', () => {
    expect(nestsAtMost(nestedArrays(64), 64)).toBe(true);
    expect(nestsAtMost(nestedArrays(65), 64)).toBe(false);
  });

  it('measures a value nested far past any call stack without overflowing its own', () => {
    // JSON.stringify overflows Node's stack at a few thousand levels.
    const deep = nestedArrays(200_000);
    expect(() => JSON.stringify(deep)).toThrow(RangeError);
    expect(nestsAtMost(deep, 64)).toBe(false);
    expect(nestsAtMost(deep, 200_000)).toBe(true);
  });
});
