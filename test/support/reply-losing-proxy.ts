// A TCP proxy in front of Redis that loses the reply to one chosen command: the command reaches
// Redis, which runs it, but from then on nothing Redis sends reaches that client connection, and
// once Redis has run the command the connection is cut. The client reconnects through the proxy as
// usual. This is a connection dropped (a Redis restart or failover, a network cut) after Redis
// applied a write and before its answer arrived.
import net from 'node:net';
import { waitUntil } from './wait';

export interface ReplyLosingProxy {
  url: string;
  /**
   * The next command a client sends whose bytes `matches` loses its reply: the connection's replies
   * are dropped from then on, and it is cut once `applied()` says Redis ran the command. Resolves
   * after the cut.
   */
  loseReplyTo(matches: (sent: string) => boolean, applied: () => Promise<boolean>): Promise<void>;
  close(): Promise<void>;
}

export async function startReplyLosingProxy(redisPort: number): Promise<ReplyLosingProxy> {
  const sockets = new Set<net.Socket>();
  let armed: { matches: (sent: string) => boolean; onMatch: (cut: () => void) => void } | undefined;
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const server = net.createServer((client) => {
    track(client);
    const upstream = net.connect(redisPort, '127.0.0.1');
    track(upstream);
    let replying = true;
    client.on('data', (chunk) => {
      upstream.write(chunk);
      const trap = armed;
      if (trap?.matches(chunk.toString('latin1'))) {
        armed = undefined;
        replying = false;
        trap.onMatch(() => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
    upstream.on('data', (chunk) => {
      if (replying) client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    loseReplyTo(matches, applied) {
      return new Promise<void>((resolve, reject) => {
        armed = {
          matches,
          onMatch: (cut) => {
            waitUntil(applied, { what: 'Redis to run the command whose reply is lost' }).then(() => {
              cut();
              resolve();
            }, reject);
          },
        };
      });
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
