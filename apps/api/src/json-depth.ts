// How deeply a JSON value nests, measured without recursion: a payload nested thousands of levels
// deep (a few kilobytes of brackets) must be refused here, not overflow the stack of the
// JSON.stringify that BullMQ runs on it, or of this check.

/**
 * Whether `value` nests arrays and objects at most `maxDepth` levels deep: a scalar is 0 levels,
 * `{}` and `[1]` are 1, `{"a": [1]}` is 2. Stops at the first container past the bound.
 */
export function nestsAtMost(value: unknown, maxDepth: number): boolean {
  // Containers still to look into, each with the number of containers around it.
  const pending: object[] = [];
  const around: number[] = [];
  if (typeof value === 'object' && value !== null) {
    pending.push(value);
    around.push(0);
  }
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    const depth = (around.pop() as number) + 1;
    if (depth > maxDepth) return false;
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === 'object' && child !== null) {
        pending.push(child);
        around.push(depth);
      }
    }
  }
  return true;
}
