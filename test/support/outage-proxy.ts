// A TCP proxy in front of Redis that takes Redis out of reach and brings it back, and tells when a
// named connection tries to reconnect meanwhile. While down it drops the connections it carries
// and each new one as soon as the client has sent its first bytes (ioredis names the connection
// first thing: CLIENT SETNAME), so that every reconnect attempt fails, as against a Redis that is
// away, and the test knows when each one was made. Redis itself keeps running and keeps its data.
import net from 'node:net';

export interface OutageProxy {
  url: string;
  /** Drops every connection, and each new one, until up(). */
  down(): void;
  /** Carries new connections to Redis again. */
  up(): void;
  /** How many reconnect attempts of the connection named `name` were dropped since down(). */
  dropped(name: string): number;
  /**
   * Resolves once the next attempt of the connection named `name` has been dropped; with `then`,
   * which runs as it is dropped, before anything else can happen (up(), say).
   */
  nextDropped(name: string, then?: () => void): Promise<void>;
  close(): Promise<void>;
}

/** The name a client gave its connection in its first bytes (CLIENT SETNAME), or ''. */
function nameIn(firstBytes: string): string {
  return /setname\r\n\$\d+\r\n([^\r]*)\r\n/i.exec(firstBytes)?.[1] ?? '';
}

export async function startOutageProxy(redisPort: number): Promise<OutageProxy> {
  let isDown = false;
  const sockets = new Set<net.Socket>();
  const droppedBy = new Map<string, number>();
  const waiting: Array<{ name: string; then: () => void; resolve: () => void }> = [];
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const drop = (client: net.Socket, firstBytes: string) => {
    client.destroy();
    const name = nameIn(firstBytes);
    droppedBy.set(name, (droppedBy.get(name) ?? 0) + 1);
    for (const w of waiting.filter((w) => w.name === name)) {
      waiting.splice(waiting.indexOf(w), 1);
      w.then();
      w.resolve();
    }
  };
  const server = net.createServer((client) => {
    track(client);
    if (isDown) {
      client.once('data', (chunk: Buffer) => drop(client, chunk.toString('latin1')));
      return;
    }
    const upstream = net.connect(redisPort, '127.0.0.1');
    track(upstream);
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    down() {
      isDown = true;
      droppedBy.clear();
      for (const socket of sockets) socket.destroy();
    },
    up() {
      isDown = false;
    },
    dropped: (name) => droppedBy.get(name) ?? 0,
    nextDropped: (name, then = () => undefined) => new Promise<void>((resolve) => waiting.push({ name, then, resolve })),
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
