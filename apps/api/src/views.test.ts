import { formatAttemptLogRow } from '@bullpen/core';
import { parseAttempts } from './views';

const row = (fields: Record<string, unknown>) => JSON.stringify({ type: 'attempt', ...fields });

describe('parseAttempts', () => {
  it('reads the attempt rows the worker writes, oldest first', () => {
    const attempts = parseAttempts([
      row({ attempt: 1, errorClass: 'network', message: 'ECONNRESET', delayMs: 1200, worker: 'w1', ts: 1_700_000_000_000 }),
      row({ attempt: 2, errorClass: 'timeout', message: 'took too long', worker: 'w2', ts: 1_700_000_001_000 }),
    ]);
    expect(attempts).toEqual([
      { attempt: 1, errorClass: 'network', message: 'ECONNRESET', delayMs: 1200, worker: 'w1', at: '2023-11-14T22:13:20.000Z' },
      { attempt: 2, errorClass: 'timeout', message: 'took too long', delayMs: null, worker: 'w2', at: '2023-11-14T22:13:21.000Z' },
    ]);
  });

  it('skips log lines that are not attempt rows', () => {
    const attempts = parseAttempts([
      'plain text a handler logged',
      JSON.stringify({ type: 'note', attempt: 1 }),
      '{"type":"attempt","attempt":"one"}',
      row({ attempt: 3, errorClass: 'handler' }),
    ]);
    expect(attempts).toEqual([{ attempt: 3, errorClass: 'handler', message: '', delayMs: null, worker: null, at: null }]);
  });

  it('reads rows written by the shared formatter, the worker side of the contract', () => {
    const line = formatAttemptLogRow({ attempt: 2, errorClass: 'rate_limited', message: 'slow down', delayMs: 5000, worker: 'w', ts: 1_700_000_000_000 });
    expect(parseAttempts([line])).toEqual([
      { attempt: 2, errorClass: 'rate_limited', message: 'slow down', delayMs: 5000, worker: 'w', at: '2023-11-14T22:13:20.000Z' },
    ]);
  });
});
