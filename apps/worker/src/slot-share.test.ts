import { shareSlots } from './slot-share';

describe('shareSlots', () => {
  it('gives every lane what it asks for when the slots are enough', () => {
    expect(shareSlots(32, [4, 2, 1])).toEqual([4, 2, 1]);
  });

  it('splits the slots evenly among lanes that all ask for more than their share', () => {
    expect(shareSlots(4, [20, 20])).toEqual([2, 2]);
    expect(shareSlots(5, [20, 20])).toEqual([3, 2]);
  });

  it('gives a lane that asks for little all of it and the rest to the lanes that ask for more', () => {
    expect(shareSlots(4, [20, 1])).toEqual([3, 1]);
    expect(shareSlots(10, [20, 2, 20])).toEqual([4, 2, 4]);
    expect(shareSlots(4, [20, 2])).toEqual([2, 2]);
  });

  it('gives lanes that ask for nothing nothing', () => {
    expect(shareSlots(4, [0, 20, 0])).toEqual([0, 4, 0]);
  });

  it('never hands out more than its capacity, one slot to a lane while there are fewer slots than lanes', () => {
    expect(shareSlots(2, [5, 5, 5])).toEqual([1, 1, 0]);
    for (let capacity = 1; capacity < 12; capacity++) {
      const shares = shareSlots(capacity, [7, 1, 3, 0, 12]);
      expect(shares.reduce((a, b) => a + b, 0)).toBe(Math.min(capacity, 23));
    }
  });
});
