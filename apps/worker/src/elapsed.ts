// Durations are measured on the monotonic clock: the wall clock can step back (NTP, a VM resumed),
// and an attempt timed with it ran for a negative time, which the exporter could not count.

/** Whole milliseconds since `start`, a performance.now() reading; never negative. */
export function elapsedMs(start: number): number {
  return Math.max(0, Math.round(performance.now() - start));
}
