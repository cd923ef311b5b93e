// A TCP proxy in front of Redis that can lose a reply: once cut() is called, the next bytes Redis
// sends are dropped with the client's connection, and the proxy stops listening, so reconnecting
// is refused. The command was applied, its answer never arrives, and Redis looks dead: what a
// client sees when Redis is killed between doing a write and answering it. heal() listens again.
// cutAfter() loses the reply to a chosen request instead, say a write in the middle of a sequence.
// It can also stand for an endpoint that follows the primary, as a managed Redis's DNS name does:
// after switchTo(), new connections reach another server while those already open stay where they are.
import net from 'node:net';

export interface CuttingProxy {
  url: string;
  /** Drop the next reply with its connection, and refuse connections until heal(). */
  cut(): void;
  /** As cut(), for the reply to the first request from now on whose bytes `matches` accepts. */
  cutAfter(matches: (request: Buffer) => boolean): void;
  /** Accept connections again (on the same port). */
  heal(): Promise<void>;
  /** Send new connections to this Redis port from now on. */
  switchTo(redisPort: number): void;
  close(): Promise<void>;
}

export async function startCuttingProxy(redisPort: number): Promise<CuttingProxy> {
  let target = redisPort;
  let cutting = false;
  let cutsAfter: ((request: Buffer) => boolean) | undefined;
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const server = net.createServer((client) => {
    track(client);
    const upstream = net.connect(target, '127.0.0.1');
    track(upstream);
    client.on('data', (chunk: Buffer) => {
      if (cutsAfter?.(chunk)) {
        cutsAfter = undefined;
        cutting = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!cutting) {
        client.write(chunk);
        return;
      }
      cutting = false;
      client.destroy();
      upstream.destroy();
      stopListening();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const stopListening = () => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  const listen = (port: number) => new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  await listen(0);
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    cut() {
      cutting = true;
    },
    cutAfter(matches) {
      cutsAfter = matches;
    },
    heal: () => listen(port),
    switchTo(next) {
      target = next;
    },
    async close() {
      const stopped = stopListening();
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
