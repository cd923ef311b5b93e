import { assessLoss, compareStreamIds, parseStreamInfo, type StreamInfo } from './stream-loss';

const info = (over: Partial<StreamInfo>): StreamInfo => ({
  length: 100,
  lastGeneratedId: '2000-0',
  firstEntryId: '1000-0',
  entriesAdded: 100,
  ...over,
});

describe('stream loss', () => {
  it('orders stream ids by time, then sequence, as numbers', () => {
    expect(compareStreamIds('10-0', '9-5')).toBe(1);
    expect(compareStreamIds('10-2', '10-10')).toBe(-1);
    expect(compareStreamIds('1795457727799-0', '1795457727799-0')).toBe(0);
  });

  it('finds nothing lost while the first entry is at or before the position', () => {
    expect(assessLoss(info({ firstEntryId: '1000-0' }), '1500-0', 60)).toEqual({ kind: 'none' });
    expect(assessLoss(info({ firstEntryId: '1500-0' }), '1500-0', 60)).toEqual({ kind: 'none' });
  });

  it('finds nothing lost when only entries already counted were trimmed', () => {
    // 150 added, 100 read up to 1500-0, 50 left after it, all still in the stream.
    expect(assessLoss(info({ firstEntryId: '1600-0', length: 50, entriesAdded: 150 }), '1500-0', 100)).toEqual({ kind: 'none' });
  });

  it('counts entries trimmed after the position before they were read', () => {
    // 300 added, 100 read, 120 in the stream, all after the position: 80 were trimmed unseen.
    expect(assessLoss(info({ firstEntryId: '1600-0', length: 120, entriesAdded: 300 }), '1500-0', 100)).toEqual({
      kind: 'lost',
      lost: 80,
    });
  });

  it('does not count entries of the batch in hand as lost when a trim overtook them after the read', () => {
    // 5 entries read (1501..1505) are gone from the stream by the time of XINFO.
    const held = ['1501-0', '1502-0', '1503-0', '1504-0', '1505-0'];
    expect(assessLoss(info({ firstEntryId: '1506-0', length: 10, entriesAdded: 115 }), '1500-0', 100, held)).toEqual({
      kind: 'none',
    });
    expect(assessLoss(info({ firstEntryId: '1506-0', length: 10, entriesAdded: 118 }), '1500-0', 100, held)).toEqual({
      kind: 'lost',
      lost: 3,
    });
  });

  it('says the stream was recreated when it has fewer entries than were read, or ids went back', () => {
    expect(assessLoss(info({ entriesAdded: 50, length: 20 }), '1500-0', 100)).toEqual({ kind: 'recreated', lost: 30, read: 30 });
    expect(assessLoss(info({ lastGeneratedId: '900-0', entriesAdded: 200 }), '1500-0', 100)).toMatchObject({ kind: 'recreated' });
    expect(assessLoss(undefined, '1500-0', 100)).toEqual({ kind: 'recreated', lost: 0, read: 0 });
    expect(assessLoss(undefined, '0-0', 0)).toEqual({ kind: 'none' });
  });

  it('cannot tell on a Redis without entries-added', () => {
    expect(assessLoss(info({ entriesAdded: undefined }), '1500-0', 100)).toEqual({ kind: 'unknown' });
  });

  it('parses the XINFO STREAM reply of Redis 7', () => {
    const reply = ['length', 3, 'radix-tree-keys', 1, 'last-generated-id', '5-1', 'max-deleted-entry-id', '0-0',
      'entries-added', 9, 'first-entry', ['4-0', ['event', 'added']], 'last-entry', ['5-1', ['event', 'x']]];
    expect(parseStreamInfo(reply)).toEqual({ length: 3, lastGeneratedId: '5-1', firstEntryId: '4-0', entriesAdded: 9 });
    expect(parseStreamInfo(['length', 0, 'last-generated-id', '0-0', 'first-entry', null])).toMatchObject({
      firstEntryId: undefined,
      entriesAdded: undefined,
    });
  });
});
