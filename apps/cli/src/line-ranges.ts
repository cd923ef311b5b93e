// A set of line numbers kept as sorted, merged ranges, so that the lines of a file of millions can
// be named in a few words ("1-4999, 5001-20000").

export class LineRanges {
  /** Disjoint, sorted, not adjacent: [first, last] inclusive. */
  private readonly ranges: Array<[number, number]> = [];
  size = 0;

  add(line: number): void {
    const r = this.ranges;
    // The first range that ends at or after line - 1; lines come mostly in order, so try the end.
    let i = r.length;
    if (i > 0 && (r[i - 1] as [number, number])[1] >= line - 1) {
      let lo = 0;
      let hi = r.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if ((r[mid] as [number, number])[1] < line - 1) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    }
    const at = r[i];
    if (at && at[0] <= line && line <= at[1]) return;
    this.size += 1;
    if (at && at[0] === line + 1) {
      at[0] = line;
      const before = r[i - 1];
      if (before && before[1] === line - 1) {
        before[1] = at[1];
        r.splice(i, 1);
      }
      return;
    }
    if (at && at[1] === line - 1) {
      at[1] = line;
      const after = r[i + 1];
      if (after && after[0] === line + 1) {
        at[1] = after[1];
        r.splice(i + 1, 1);
      }
      return;
    }
    r.splice(i, 0, [line, line]);
  }

  /** "1-3, 7, 9-12", the first `max` ranges, then how many more. */
  format(max = 20): string {
    const shown = this.ranges.slice(0, max).map(([a, b]) => (a === b ? String(a) : `${a}-${b}`));
    const more = this.ranges.length - shown.length;
    return more > 0 ? `${shown.join(', ')} and ${more} more ranges` : shown.join(', ');
  }
}
