// Writes to Redis that a process makes while handling one event leave in a few syscalls, not one
// each. One read of replies finishes many of a worker's jobs at once, and each job's next command
// was a write(2) of its own; on a small VM a syscall costs more than the command's own work in
// Node. The socket is corked at the first write and uncorked once MAX_COALESCED_WRITES writes wait,
// or on the next tick, once the callback and the promise jobs it started have run: commands go out
// in the order they were made, before the event loop moves on (so no later: uncorking on
// setImmediate instead added a loop iteration to every hop, about 0.3 ms to a job's pickup).
// The cap keeps Redis busy while the worker is: holding a whole batch of 50 jobs' commands until
// the tick ends made the two take turns, Redis idle while the worker ran the batch and the worker
// idle while Redis ran it (bench drain 0.56-0.59 of bare BullMQ with one write a tick, 0.59-0.64
// with a cap of 4, 8 or 16, with the same CPU per job). Nothing else about the connection changes:
// replies, timeouts, reconnects and errors are ioredis's as before.
import type { Socket } from 'node:net';
import type IORedis from 'ioredis';

const COALESCED = Symbol('bullpen.coalescedWrites');
/** At most this many writes wait in the cork before they are sent. */
export const MAX_COALESCED_WRITES = 8;

type CoalescedSocket = Socket & { [COALESCED]?: true };

function coalesce(stream: CoalescedSocket | undefined): void {
  if (!stream || stream[COALESCED] || typeof stream.cork !== 'function') return;
  stream[COALESCED] = true;
  const write = stream.write;
  let corked = false;
  let waiting = 0;
  const flush = () => {
    // A tick's flush may find its batch already sent at the cap.
    if (!corked) return;
    corked = false;
    waiting = 0;
    stream.uncork();
  };
  stream.write = function coalescedWrite(this: Socket, ...args: unknown[]): boolean {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(flush);
    }
    const accepted = (write as (...a: unknown[]) => boolean).apply(this, args);
    waiting += 1;
    if (waiting >= MAX_COALESCED_WRITES) flush();
    return accepted;
  } as Socket['write'];
}

/** Coalesces the writes of `client`'s connection, and of each one it opens after a reconnect. */
export function coalesceWrites(client: IORedis): void {
  const current = () => coalesce((client as unknown as { stream?: CoalescedSocket }).stream);
  client.on('connect', current);
  current();
}
