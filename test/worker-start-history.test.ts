// What a worker reads of a job's earlier starts before it runs the job again: the last attempt row
// a worker wrote as its attempt ended, passing over the rows of starts lost to a stall, which
// chose no delay and whose lost lease is part of the rerun's wait.
import { createRedis, formatAttemptLogRow, jobKeys, type RedisClient } from '@bullpen/core';
import { readStartHistory } from '../apps/worker/src/job-history';
import { cleanupPrefix } from './support/config';
import { redisUrl, testPrefix } from './support/wait';

describe("a job's start history", () => {
  let redis: RedisClient;
  const prefix = testPrefix('history');
  beforeAll(() => {
    redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
  });
  afterAll(async () => {
    await cleanupPrefix(prefix);
    await redis.quit();
  });

  const row = (attempt: number, errorClass: 'handler' | 'stalled', delayMs: number | null, ts: number) =>
    formatAttemptLogRow({ attempt, errorClass, message: errorClass, delayMs, worker: 'w', ts });

  it('passes over the rows of starts lost to a stall for the last attempt row', async () => {
    const keys = jobKeys(prefix, 'work', 'retried-then-stalled');
    await redis.hset(keys.job, 'ats', '3');
    await redis.rpush(keys.logs, row(1, 'handler', 500, 1000), row(2, 'stalled', null, 5000), row(2, 'stalled', null, 9000));

    const history = await readStartHistory(redis, prefix, 'work', 'retried-then-stalled');
    expect(history.lastRow).toMatchObject({ attempt: 1, errorClass: 'handler', delayMs: 500, ts: 1000 });
  });

  it('has no last attempt row when every row it reads is a stall', async () => {
    const keys = jobKeys(prefix, 'work', 'only-stalled');
    await redis.hset(keys.job, 'ats', '2');
    await redis.rpush(keys.logs, row(1, 'stalled', null, 5000));

    expect((await readStartHistory(redis, prefix, 'work', 'only-stalled')).lastRow).toBeUndefined();
  });
});
