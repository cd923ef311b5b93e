// Behind a load balancer the API's idle client connections must outlive the balancer's own (60 s
// for AWS ALB and nginx): were the API to close one first, a request the balancer sent on it as it
// closed would fail with a 502 the API never saw. The API process takes its idle timeout from
// API_KEEPALIVE_TIMEOUT_MS; a short one shows it is the one applied.
import net from 'node:net';
import { spawnApi, type AppProcess } from './support/prometheus';
import { redisUrl, testPrefix } from './support/wait';

describe('the API process keeps idle connections open for API_KEEPALIVE_TIMEOUT_MS', () => {
  let api: AppProcess;

  beforeAll(async () => {
    api = await spawnApi({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: testPrefix('keepalive'), AUTH_DISABLED: 'true', API_KEEPALIVE_TIMEOUT_MS: '1000' });
  }, 60_000);

  afterAll(() => api?.kill('SIGKILL'));

  it('answers two requests on one connection, then closes it once idle that long', async () => {
    const socket = net.connect(api.port, '127.0.0.1');
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
    let received = '';
    const answers = (n: number) =>
      new Promise<void>((resolve) => {
        const onData = (chunk: Buffer) => {
          received += chunk.toString();
          if ((received.match(/HTTP\/1\.1 200 OK/g) ?? []).length >= n) {
            socket.off('data', onData);
            resolve();
          }
        };
        socket.on('data', onData);
      });
    const request = 'GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n';
    socket.write(request);
    await answers(1);
    socket.write(request);
    await answers(2);
    const idleFrom = Date.now();
    const closedAt = await closed;
    // Closed by the API after about a second of quiet: not at once, and not after Node's own 5 s.
    expect(closedAt - idleFrom).toBeGreaterThanOrEqual(900);
    expect(closedAt - idleFrom).toBeLessThan(4500);
  });
});
