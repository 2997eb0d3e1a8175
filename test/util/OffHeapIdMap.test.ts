import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { createMessageId } from '../../src/core/messages/messageId.js';
import { OffHeapIdMap } from '../../src/util/OffHeapIdMap.js';
import { random } from '../helpers/random.js';

describe('OffHeapIdMap', () => {
  it('answers as a Map does through random sets, updates and deletes, as it grows, shrinks and rewrites its arena', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rnd = random(seed);
      const map = new OffHeapIdMap();
      const model = new Map<string, number>();
      // A pool of ids of every length the format allows, plus generated ones; some share long prefixes.
      const pool = Array.from({ length: 3000 }, (_, i) => {
        const kind = i % 3;
        if (kind === 0) return createMessageId(1_700_000_000_000 + i);
        if (kind === 1) return `shared_prefix_${'x'.repeat(i % 100)}_${i}`;
        return `k${i}`.padEnd(8 + (i % 120), '-');
      });
      // Phases: mostly adds (growth), then mostly deletes (shrink, dead arena bytes), then churn.
      for (const addShare of [0.9, 0.15, 0.5]) {
        for (let step = 0; step < 6000; step++) {
          const key = pool[Math.floor(rnd() * pool.length)]!;
          if (rnd() < addShare) {
            const value = Math.floor(rnd() * 2 ** 40) + rnd();
            map.set(key, value);
            model.set(key, value);
          } else {
            expect(map.delete(key)).toBe(model.delete(key));
          }
          if (step % 500 === 0) {
            expect(map.size).toBe(model.size);
            expect(pool.filter((k) => map.get(k) !== model.get(k))).toEqual([]);
          }
        }
      }
      expect(map.size).toBe(model.size);
      expect(pool.filter((k) => map.has(k) !== model.has(k) || map.get(k) !== model.get(k))).toEqual([]);
      expect([...model.keys()].filter((k) => !map.delete(k))).toEqual([]);
      expect(map.size).toBe(0);
      expect(pool.filter((k) => map.has(k))).toEqual([]);
    }
  });

  it('finds a key inside a longer string without slicing it, and only the exact range', () => {
    const map = new OffHeapIdMap();
    map.set('m1_abc', 7);
    const line = '{"op":"put","entry":{"id":"m1_abc","text":"m1_abcd"}}';
    const start = line.indexOf('m1_abc');
    expect(map.hasIn(line, start, start + 6)).toBe(true);
    expect(map.hasIn(line, start, start + 5)).toBe(false);
    expect(map.hasIn(line, start - 1, start + 6)).toBe(false);
    const second = line.lastIndexOf('m1_abc');
    expect(map.hasIn(line, second, second + 7)).toBe(false);
    expect(map.hasIn(line, second, second + 6)).toBe(true);
    expect(map.hasIn(line, line.length - 2, line.length + 5)).toBe(false);
  });

  it('keeps values exact (order keys past 2^31, fractions) and refuses keys it cannot hold', () => {
    const map = new OffHeapIdMap();
    for (const [k, v] of [['a_long_id_1', 2 ** 52 + 1], ['b_long_id_2', -3.25], ['c_long_id_3', 0]] as const) map.set(k, v);
    expect(map.get('a_long_id_1')).toBe(2 ** 52 + 1);
    expect(map.get('b_long_id_2')).toBe(-3.25);
    expect(map.get('c_long_id_3')).toBe(0);
    map.set('b_long_id_2', 9);
    expect(map.get('b_long_id_2')).toBe(9);
    expect(map.size).toBe(3);
    expect(() => map.set('x'.repeat(256), 1)).toThrow(RangeError);
    expect(() => map.set('ünïcode_id', 1)).not.toThrow();
    expect(() => map.set('id_with_€', 1)).toThrow(RangeError);
    expect(map.has('id_with_€')).toBe(false);
    expect(map.get('ünïcode_id')).toBe(1);
    map.clear();
    expect(map.size).toBe(0);
    expect(map.has('a_long_id_1')).toBe(false);
    map.set('a_long_id_1', 5);
    expect(map.get('a_long_id_1')).toBe(5);
  });

  it('holds 100,000 message ids outside the heap, and gives the room back as they go', () => {
    const ids = Array.from({ length: 100_000 }, (_, i) => createMessageId(1_700_000_000_000 + (i >> 4)));
    // A full collection before each reading, so that only what stays is counted.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const map = new OffHeapIdMap();
    ids.forEach((id, i) => map.set(id, i));
    gc();
    // A Map of these would keep its table on the heap (3.7 MB); here nothing stays there per id.
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(500_000);
    expect(map.size).toBe(100_000);
    expect(ids.filter((id, i) => map.get(id) !== i)).toEqual([]);
    for (const id of ids.slice(0, 99_000)) map.delete(id);
    expect(map.size).toBe(1000);
    expect(ids.slice(99_000).filter((id, i) => map.get(id) !== 99_000 + i)).toEqual([]);
    expect(map.has(ids[0]!)).toBe(false);
  });
});
