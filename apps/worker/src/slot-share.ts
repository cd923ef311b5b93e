// How a worker process splits its handler slots among its lanes: max-min fair, so a lane that
// asks for little gets all it asks for and the lanes that ask for more split the rest evenly.

/**
 * Shares `capacity` slots among lanes asking for `demands[i]` each (non-negative integers). No lane
 * gets more than it asks for; a lane that asks gets at least one slot while there are enough for
 * every lane that asks; a slot left over from an even split goes to the earlier lane.
 */
export function shareSlots(capacity: number, demands: readonly number[]): number[] {
  const shares: number[] = demands.map(() => 0);
  // Smallest demand first: a lane that asks for no more than an even split of what is left gets it.
  const order = demands.map((_, i) => i).sort((a, b) => demands[a]! - demands[b]! || a - b);
  let left = capacity;
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    const lanes = order.length - k;
    if (demands[i]! <= Math.floor(left / lanes)) {
      shares[i] = demands[i]!;
      left -= demands[i]!;
      continue;
    }
    // This lane and every one after it ask for more than an even split: they split what is left,
    // the first ones in lane order taking one more when it does not divide evenly.
    const cut = order.slice(k).sort((a, b) => a - b);
    const even = Math.floor(left / lanes);
    let extra = left - even * lanes;
    for (const j of cut) {
      shares[j] = even + (extra > 0 ? 1 : 0);
      if (extra > 0) extra -= 1;
    }
    break;
  }
  return shares;
}
