import { createLogger } from '@bullpen/core';
import { captureLogs } from '../../../test/support/logs';
import { handlerLogger } from './handler-logger';

function setup() {
  const root = createLogger('worker', 'debug');
  const lines = captureLogs(root);
  const logger = handlerLogger(root.child({ thread: 3 }), { thread: 3, lane: 'emails', job_id: 'job-7', attempt: 2 });
  return { lines, logger };
}

describe('handlerLogger', () => {
  it('writes the attempt fields on every line, at every level', () => {
    const { lines, logger } = setup();
    logger.debug('one');
    logger.warn('two', { to: 'a@b.c' });
    expect(lines).toEqual([
      expect.objectContaining({ level: 'debug', msg: 'one', service: 'worker', thread: 3, lane: 'emails', job_id: 'job-7', attempt: 2 }),
      expect.objectContaining({ level: 'warn', msg: 'two', to: 'a@b.c', lane: 'emails', job_id: 'job-7', attempt: 2 }),
    ]);
  });

  it("keeps a handler's field of the same name as the attempt's under handler_<name>, in a child logger of its own too", () => {
    const { lines, logger } = setup();
    logger.child({ job_id: 'order-9' }).info('sent', { thread: 'pool', attempt: 2 });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'sent', thread: 3, job_id: 'job-7', attempt: 2, handler_job_id: 'order-9', handler_thread: 'pool' });
    // The same value is no clash.
    expect(lines[0]).not.toHaveProperty('handler_attempt');
  });

  it('logs an Error given alone with its message and stack', () => {
    const { lines, logger } = setup();
    logger.error(new Error('mail server down'));
    expect(lines).toEqual([expect.objectContaining({ level: 'error', msg: 'mail server down', stack: expect.stringContaining('mail server down'), job_id: 'job-7' })]);
  });
});
