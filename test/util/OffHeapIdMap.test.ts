import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it, vi } from 'vitest';
import { createMessageId } from '../../src/core/messages/messageId.js';
import { OffHeapIdMap } from '../../src/util/OffHeapIdMap.js';
import { random } from '../helpers/random.js';

/** A message-id-shaped key, the same each time for the same number. */
const idOf = (i: number) => `m1_${i.toString(36).padStart(23, '0')}`;

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
    // The refused key's bytes, copied up to its wide character, are overwritten by the next key.
    map.set('id_with_e', 7);
    expect(map.size).toBe(5);
    expect(map.get('id_with_e')).toBe(7);
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
    // The ids' bytes (a length byte, the id, an 8-byte value), the arena's room to grow and the table.
    const full = map.bytes;
    expect(full / 100_000).toBeGreaterThan(1 + ids[0]!.length + 8);
    expect(full / 100_000).toBeLessThan(2 * (1 + ids[0]!.length + 8) + 2 * 4 * (4 / 3) * 2);
    for (const id of ids.slice(0, 99_000)) map.delete(id);
    expect(map.size).toBe(1000);
    expect(ids.slice(99_000).filter((id, i) => map.get(id) !== 99_000 + i)).toEqual([]);
    expect(map.has(ids[0]!)).toBe(false);
    expect(map.bytes).toBeLessThan(full / 25);
  });

  it('reuses its arena for keys that come and go: compacted in place, not replaced', () => {
    const map = new OffHeapIdMap();
    const id = idOf;
    const entryBytes = 1 + id(0).length + 8;
    for (let i = 0; i < 5000; i++) map.set(id(i), i);
    // A queue spilled and read back: as many keys leave as come, 40 times over.
    let settled = 0;
    let missing = 0;
    const allocate = vi.spyOn(Buffer, 'allocUnsafe');
    for (let i = 5000; i < 200_000; i++) {
      map.set(id(i), i);
      if (!map.delete(id(i - 5000))) missing++;
      if (i === 20_000) {
        settled = map.bytes;
        allocate.mockClear();
      }
    }
    // Once it has grown to hold what comes and goes, no new buffer: each would wait for a full collection.
    expect(allocate).not.toHaveBeenCalled();
    allocate.mockRestore();
    expect(missing).toBe(0);
    expect(map.bytes).toBe(settled);
    // The live entries, room for as many again while dead ones wait, and the table.
    expect(map.bytes).toBeLessThanOrEqual(4 * 5000 * entryBytes + 2 * 4 * 8192);
    expect(map.size).toBe(5000);
    const kept = Array.from({ length: 5000 }, (_, k) => 195_000 + k);
    expect(kept.filter((i) => map.get(id(i)) !== i)).toEqual([]);
    expect(map.has(id(194_999))).toBe(false);
  });

  it('keeps a key set again after its delete, with its new value, through compaction', () => {
    const map = new OffHeapIdMap();
    const id = idOf;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 400; i++) map.set(id(i), round * 1000 + i);
      for (let i = 0; i < 400; i += 2) map.delete(id(i));
    }
    for (let i = 0; i < 400; i += 2) map.set(id(i), -i);
    expect(map.size).toBe(400);
    const wrong = Array.from({ length: 400 }, (_, i) => i).filter((i) => map.get(id(i)) !== (i % 2 === 0 ? -i : 49_000 + i));
    expect(wrong).toEqual([]);
  });

  it('after clear, holds a like number of keys in the buffers it had', () => {
    const map = new OffHeapIdMap();
    const id = idOf;
    for (let i = 0; i < 10_000; i++) map.set(id(i), i);
    const grown = map.bytes;
    map.clear();
    for (let i = 10_000; i < 20_000; i++) map.set(id(i), i);
    expect(map.bytes).toBe(grown);
    expect(map.get(id(15_000))).toBe(15_000);
    expect(map.has(id(5_000))).toBe(false);
  });
});
