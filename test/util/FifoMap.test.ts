import { describe, expect, it } from 'vitest';
import { FifoMap } from '../../src/util/FifoMap.js';

describe('FifoMap', () => {
  it('knows its oldest entry; setting a key again makes it the newest', () => {
    const m = new FifoMap<string, number>();
    m.set('a', 1).set('b', 2).set('c', 3);
    expect(m.oldest()).toEqual(['a', 1]);
    m.set('a', 4);
    expect(m.oldest()).toEqual(['b', 2]);
    expect([...m.entries()]).toEqual([['b', 2], ['c', 3], ['a', 4]]);
    expect(m.shift()).toEqual(['b', 2]);
    expect(m.delete('c')).toBe(true);
    expect(m.delete('c')).toBe(false);
    expect([...m.values()]).toEqual([4]);
    expect(m.size).toBe(1);
    expect(m.shift()).toEqual(['a', 4]);
    expect(m.shift()).toBeUndefined();
    expect(m.size).toBe(0);
  });

  it('matches an insertion-ordered reference through a long random mix of operations', () => {
    const m = new FifoMap<number, number>();
    let reference: Array<[number, number]> = [];
    let seed = 7;
    const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
    for (let step = 0; step < 20_000; step++) {
      const key = random(300);
      const op = random(10);
      if (op < 5) {
        m.set(key, step);
        reference = reference.filter(([k]) => k !== key);
        reference.push([key, step]);
      } else if (op < 8) {
        expect(m.delete(key)).toBe(reference.some(([k]) => k === key));
        reference = reference.filter(([k]) => k !== key);
      } else {
        expect(m.shift()).toEqual(reference.shift());
      }
      expect(m.size).toBe(reference.length);
      expect(m.get(key)).toBe(reference.find(([k]) => k === key)?.[1]);
    }
    expect([...m.entries()]).toEqual(reference);
  });
});
