import { ReplyError } from 'ioredis';
import { isReadOnlyReply, transientRefusalOf } from './redis';
import { isOutOfMemoryReply } from './redis-memory';

const aborted = (...previousErrors: Error[]) =>
  Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), { previousErrors });

describe("Redis's refusals", () => {
  it("tells a replica's READONLY refusal from an OOM one, also inside an aborted transaction", () => {
    const readOnly = new ReplyError("READONLY You can't write against a read only replica.");
    expect(isReadOnlyReply(readOnly)).toBe(true);
    expect(isOutOfMemoryReply(readOnly)).toBe(false);
    expect(isReadOnlyReply(aborted(readOnly))).toBe(true);
  });

  it('names the refusals that pass, and nothing else', () => {
    expect(transientRefusalOf(new ReplyError('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.'))).toBe('BUSY');
    expect(transientRefusalOf(new ReplyError('LOADING Redis is loading the dataset in memory'))).toBe('LOADING');
    expect(transientRefusalOf(aborted(new ReplyError("READONLY You can't write against a read only replica.")))).toBe('READONLY');
    expect(transientRefusalOf(new ReplyError("OOM command not allowed when used memory > 'maxmemory'."))).toBeUndefined();
    expect(transientRefusalOf(new ReplyError('ERR unknown command'))).toBeUndefined();
    expect(transientRefusalOf(new Error('BUSY'))).toBeUndefined();
  });
});
