// Where a command writes: results to `out` (stdout), everything else to `err` (stderr).
export interface Out {
  /** One result (a line or a JSON document); a newline is added. */
  out(s: string): void;
  /** Diagnostics, written as given. */
  err(s: string): void;
  /** Whether stderr is a terminal, where progress may be redrawn in place; default false. */
  tty?: boolean;
}
