// Random sources for jitter: Math.random in production, a seeded generator where a test or a
// benchmark needs the same delays on every run.

/** Returns a number in [0, 1). */
export type RandomSource = () => number;

/** mulberry32: small, fast and good enough for jitter; the same seed gives the same sequence. */
export function seededRandom(seed: number): RandomSource {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
