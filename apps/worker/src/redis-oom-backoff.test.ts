import { createLogger } from '@bullpen/core';
import { ReplyError } from 'ioredis';
import { captureLogs } from '../../../test/support/logs';
import { RedisOomBackoff, oomPauseMs } from './redis-oom-backoff';

const OOM = new ReplyError("OOM command not allowed when used memory > 'maxmemory'.");

describe('oomPauseMs', () => {
  it('doubles from the first pause up to the cap', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 100, 5000].map((step) => oomPauseMs(step, 1000, 30_000))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000,
    ]);
  });
});

describe('RedisOomBackoff', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  function setup() {
    const logger = createLogger('worker', 'info');
    const lines = captureLogs(logger);
    const calls: string[] = [];
    const backoff = new RedisOomBackoff({
      lane: 'a',
      logger: logger.child({ lane: 'a' }),
      pause: async () => void calls.push('pause'),
      resume: async () => void calls.push('resume'),
      now: () => Date.now(),
    });
    return { backoff, lines, calls };
  }

  it('pauses intake for longer after each refusal in a row, and logs one line per pause', () => {
    const { backoff, lines, calls } = setup();
    backoff.refused(OOM);
    expect(calls).toEqual(['pause']);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', lane: 'a', pause_ms: 1000, error: OOM.message });
    expect(lines[0]?.msg).toMatch(/^Redis is out of memory \(maxmemory\): lane a cannot take or finish jobs until memory is freed; intake paused for 1000 ms/);
    // Refusals during the pause (a completion, the stalled check) are counted, not logged.
    for (let i = 0; i < 100; i += 1) backoff.refused(OOM);
    expect(lines).toHaveLength(1);
    jest.advanceTimersByTime(999);
    expect(calls.filter((c) => c === 'resume')).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(calls.at(-1)).toBe('resume');
    calls.length = 0;

    backoff.refused(OOM);
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'Redis still out of memory: lane a intake paused for 2000 ms', refusals: 101 });
    for (const pauseMs of [2000, 4000, 8000, 16_000, 30_000]) {
      jest.advanceTimersByTime(pauseMs);
      backoff.refused(OOM);
    }
    expect(lines.map((l) => l.pause_ms)).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(calls).toEqual(['pause', ...Array.from({ length: 5 }, () => ['resume', 'pause']).flat()]);
    backoff.close();
  });

  it('starts again from the first pause once Redis accepts a write, and ends a pause at once then', () => {
    const { backoff, lines, calls } = setup();
    backoff.refused(OOM);
    jest.advanceTimersByTime(1000);
    backoff.refused(OOM);
    expect(backoff.pausing).toBe(true);
    jest.advanceTimersByTime(500);
    backoff.accepted(); // a job completed during the pause: memory has been freed
    expect(backoff.pausing).toBe(false);
    expect(calls).toEqual(['pause', 'resume', 'pause', 'resume']);
    expect(lines[2]).toMatchObject({ level: 'info', msg: 'Redis accepts writes again: lane a takes and finishes jobs again', refusals: 2, out_of_memory_ms: 1500 });
    backoff.accepted();
    expect(lines).toHaveLength(3);

    // Back within the quiet period: a continuation at warn, from the first pause again.
    backoff.refused(OOM);
    expect(lines[3]).toMatchObject({ level: 'warn', pause_ms: 1000 });
    backoff.close();
    expect(backoff.pausing).toBe(false);
    jest.advanceTimersByTime(1000);
    expect(calls).toEqual(['pause', 'resume', 'pause', 'resume', 'pause']);
  });

  it('announces a new run of refusals at error level again after a quiet period', () => {
    const { backoff, lines } = setup();
    backoff.refused(OOM);
    backoff.accepted();
    jest.advanceTimersByTime(30_000);
    backoff.refused(OOM);
    expect(lines.map((l) => l.level)).toEqual(['error', 'info', 'error']);
    backoff.close();
  });

  it('neither pauses nor resumes once closed', () => {
    const { backoff, calls } = setup();
    backoff.refused(OOM);
    backoff.close();
    jest.advanceTimersByTime(60_000);
    backoff.refused(OOM);
    expect(calls).toEqual(['pause']);
  });
});
