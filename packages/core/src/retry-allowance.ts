// The retry budget's allowance, counted in millionths. The policy's ratio and per-second minimum are
// decimals that binary floating point does not hold exactly: 0.7 × 90 is 62.99999999999999 there,
// and its floor 62 where the lane's documented allowance is 63. Scaled to integers first, the sum is
// exact (well inside 2^53 for every value the lane schema admits), and so is its floor.

/** The unit the budget's ratio and minimum are counted in: millionths of a retry. */
export const ALLOWANCE_SCALE = 1_000_000;

/** `value` in millionths, to the nearest: the policy's decimals taken to six places. */
export function inMillionths(value: number): number {
  return Math.round(value * ALLOWANCE_SCALE);
}

/**
 * Retries allowed in a window: floor(ratio × firstAttempts + minInWindow), exactly as the decimals
 * read. The same sum retry-budget.lua makes in Redis.
 */
export function retryAllowance(ratio: number, firstAttempts: number, minInWindow: number): number {
  return Math.floor((inMillionths(ratio) * firstAttempts + inMillionths(minInWindow)) / ALLOWANCE_SCALE);
}
