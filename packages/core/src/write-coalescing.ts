// Writes to Redis that a process makes in one turn of the event loop leave in one syscall. A
// worker finishing 50 jobs in a turn sends 50 commands; each stream.write() is a write(2) of its
// own, and on a small VM a syscall costs more than the command's own work in Node. The socket is
// corked at the turn's first write and uncorked when the turn ends (setImmediate): commands go
// out in the order they were made, in one writev, at most one turn later. Nothing else about the
// connection changes: replies, timeouts, reconnects and errors are ioredis's as before. A handler
// that blocks the event loop delays this turn's writes until it yields, as it already delays the
// replies and timers of the whole process (CPU-heavy handlers belong in isolated lanes).
import type { Socket } from 'node:net';
import type IORedis from 'ioredis';

const COALESCED = Symbol('bullpen.coalescedWrites');

type CoalescedSocket = Socket & { [COALESCED]?: true };

function coalesce(stream: CoalescedSocket | undefined): void {
  if (!stream || stream[COALESCED] || typeof stream.cork !== 'function') return;
  stream[COALESCED] = true;
  const write = stream.write;
  let corked = false;
  const flush = () => {
    corked = false;
    stream.uncork();
  };
  stream.write = function coalescedWrite(this: Socket, ...args: unknown[]): boolean {
    if (!corked) {
      corked = true;
      stream.cork();
      setImmediate(flush);
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args);
  } as Socket['write'];
}

/** Coalesces the writes of `client`'s connection, and of each one it opens after a reconnect. */
export function coalesceWrites(client: IORedis): void {
  const current = () => coalesce((client as unknown as { stream?: CoalescedSocket }).stream);
  client.on('connect', current);
  current();
}
