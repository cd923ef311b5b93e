// The reader's place in one lane's stream, beside the position saved for it in Redis
// (lane-state-store.ts): the read loop moves it, and so do the loss checks (loss-recorder.ts).
export interface Cursor {
  lane: string;
  key: string;
  /** Entries up to here are counted. */
  position: string;
  /** The position as saved in Redis ('' when nothing was saved), expected by the next commit. */
  saved: string;
  read: number;
}
