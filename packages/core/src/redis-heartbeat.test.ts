import { HEARTBEAT_FALLBACK_INTERVAL_MS, heartbeatIntervalMs } from './redis-heartbeat';

describe('heartbeatIntervalMs', () => {
  it('pings at a third of the server idle timeout', () => {
    expect(heartbeatIntervalMs(300)).toBe(100_000);
    expect(heartbeatIntervalMs(3)).toBe(1000);
  });

  it('pings no more often than every 250 ms', () => {
    expect(heartbeatIntervalMs(0.5)).toBe(250);
  });

  it('does not ping a server that closes no idle client', () => {
    expect(heartbeatIntervalMs(0)).toBeUndefined();
  });

  it('pings at the fallback when the timeout cannot be read', () => {
    expect(heartbeatIntervalMs(undefined)).toBe(HEARTBEAT_FALLBACK_INTERVAL_MS);
  });
});
