// Keeps one repeated log line from flooding the log: the first occurrence of a message is logged,
// repeats within an interval are only counted, and each interval that had repeats ends with one
// summary line carrying their count. A message that stops repeating is forgotten after a quiet
// interval, so its next occurrence is logged again at once.

export interface RepeatLimiterOptions {
  /** Length of a counting window; default 30000 ms. */
  intervalMs?: number;
  /** Messages tracked at once; beyond it, new messages are counted under OTHER_MESSAGES. Default 50. */
  maxKeys?: number;
  /**
   * What becomes of a new message while maxKeys are tracked: `counted` under OTHER_MESSAGES (so
   * that varying messages cannot flood the log either), or `admitted`, tracked in the place of the
   * oldest message that has not repeated (for text that would otherwise be printed anyway, where
   * dropping it would lose more than flooding). Default `counted`.
   */
  beyondMaxKeys?: 'counted' | 'admitted';
  /** Called at the end of a window in which `key` was suppressed `repeats` times. */
  onRepeats: (key: string, repeats: number) => void;
}

/** The key under which messages are counted once maxKeys distinct ones are being tracked. */
export const OTHER_MESSAGES = '(other messages)';

export class RepeatLimiter {
  private readonly intervalMs: number;
  private readonly maxKeys: number;
  /** Messages seen in the current window, with the repeats suppressed since their last line. */
  private readonly repeats = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RepeatLimiterOptions) {
    this.intervalMs = options.intervalMs ?? 30_000;
    this.maxKeys = options.maxKeys ?? 50;
  }

  /** Whether this occurrence of `key` is to be logged now; if not, it has been counted. */
  admit(key: string): boolean {
    const seen = this.repeats.get(key);
    if (seen !== undefined) {
      this.repeats.set(key, seen + 1);
      return false;
    }
    if (this.repeats.size >= this.maxKeys && this.options.beyondMaxKeys === 'admitted') {
      // Room is made by forgetting the oldest message that has not repeated (its next occurrence
      // is then written again, as after a quiet interval); with none, the new one goes untracked.
      const unrepeated = [...this.repeats].find(([, count]) => count === 0);
      if (!unrepeated) return true;
      this.repeats.delete(unrepeated[0]);
    }
    if (this.repeats.size >= this.maxKeys) {
      this.repeats.set(OTHER_MESSAGES, (this.repeats.get(OTHER_MESSAGES) ?? 0) + 1);
      return false;
    }
    this.repeats.set(key, 0);
    this.timer ??= setInterval(() => this.flush(), this.intervalMs).unref();
    return true;
  }

  /** Reports the repeats counted since the last window ended; forgets messages that had none. */
  flush(): void {
    for (const [key, count] of [...this.repeats]) {
      if (count === 0) {
        this.repeats.delete(key);
        continue;
      }
      this.repeats.set(key, 0);
      this.options.onRepeats(key, count);
    }
    if (this.repeats.size === 0) this.stopTimer();
  }

  /** Reports what is still counted and stops the timer. */
  close(): void {
    this.flush();
    this.repeats.clear();
    this.stopTimer();
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
