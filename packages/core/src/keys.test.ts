import { admissionGroupsKey, admissionKey, exporterStateKey, jobChildKeys, jobKeys, laneEventsKey, lanePrefix, laneStateKeys, retryBudgetBucketKey } from './keys';

/** The part of a key Redis Cluster hashes: the first non-empty {...} section, else the whole key. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('lane keys', () => {
  it('puts every key of a lane, BullMQ’s and bullpen’s, under the lane’s hash tag', () => {
    const keys = [
      ...Object.values(laneStateKeys('bp', 'emails')),
      laneEventsKey('bp', 'emails'),
      admissionKey('bp', 'emails'),
      admissionGroupsKey('bp', 'emails'),
      retryBudgetBucketKey('bp', 'emails', 1_700_000_000),
      exporterStateKey('bp', 'emails'),
      ...Object.values(jobKeys('bp', 'emails', '42')),
      ...Object.values(jobChildKeys('bp', 'emails', '42')),
      // BullMQ builds its keys as <prefix>:<queue name>:<suffix>.
      `${lanePrefix('bp', 'emails')}:emails:de:some-key`,
    ];
    expect(new Set(keys.map(hashTag))).toEqual(new Set(['emails']));
  });

  it('gives different lanes different hash tags, so lanes spread over a cluster', () => {
    expect(hashTag(laneEventsKey('bp', 'emails'))).not.toBe(hashTag(laneEventsKey('bp', 'reports')));
  });
});
