import { describe, expect, it } from 'vitest';
import { RecentMap } from '../../src/util/RecentMap.js';

describe('RecentMap', () => {
  it('keeps the last half of its capacity at least and its capacity at most, forgetting a generation at a time', () => {
    const dropped: number[][] = [];
    const m = new RecentMap<number, string>(10, (gone) => dropped.push([...gone.keys()]));
    for (let i = 0; i < 23; i++) {
      m.set(i, `v${i}`);
      expect(m.size).toBeLessThanOrEqual(10);
      for (let k = Math.max(0, i - 4); k <= i; k++) expect(m.get(k)).toBe(`v${k}`);
    }
    expect(dropped).toEqual([
      [0, 1, 2, 3, 4],
      [5, 6, 7, 8, 9],
      [10, 11, 12, 13, 14],
    ]);
    expect(m.has(14)).toBe(false);
    expect(m.has(15)).toBe(true);
  });

  it('sets a key again in the current generation, deletes from both, and reports neither as forgotten', () => {
    const dropped: string[][] = [];
    const m = new RecentMap<string, number>(4, (gone) => dropped.push([...gone.keys()]));
    m.set('a', 1).set('b', 2); // a generation full: a, b become the old one
    m.set('a', 10); // set again: the newer value, in the current generation
    expect(m.get('a')).toBe(10);
    expect(m.delete('b')).toBe(true);
    expect(m.delete('b')).toBe(false);
    m.set('c', 3); // a and c fill the current generation: the old one (a's old value) is dropped
    expect(dropped).toEqual([]);
    expect(m.get('a')).toBe(10);
    expect(m.delete('c')).toBe(true);
    m.set('d', 4).set('e', 5); // now a is forgotten, with its generation
    expect(dropped).toEqual([['a']]);
    expect([m.has('a'), m.get('d'), m.get('e')]).toEqual([false, 4, 5]);
    m.set('d', 40);
    expect(m.delete('d')).toBe(true);
    expect(m.has('d')).toBe(false);
    m.clear();
    expect(m.size).toBe(0);
    expect(dropped).toHaveLength(1);
  });

  it('tells a stored undefined from a missing key', () => {
    const m = new RecentMap<string, undefined | number>(100);
    m.set('x', undefined);
    expect(m.has('x')).toBe(true);
    expect(m.get('x')).toBeUndefined();
  });
});
