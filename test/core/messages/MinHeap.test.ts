import { describe, expect, it } from 'vitest';
import { MinHeap } from '../../../src/core/messages/MinHeap.js';

describe('MinHeap', () => {
  it('pops items in key order, whatever order they were pushed in, across interleaved pushes and pops', () => {
    const heap = new MinHeap<string>();
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const model: number[] = [];
    const popped: number[] = [];
    const expected: number[] = [];
    for (let step = 0; step < 5000; step++) {
      if (random() < 0.6 || model.length === 0) {
        // Duplicates included: a requeued message keeps its ordinal.
        const key = Math.floor(random() * 500);
        heap.push(key, `item-${key}`);
        model.push(key);
      } else {
        model.sort((a, b) => a - b);
        expected.push(model.shift()!);
        popped.push(Number(heap.pop()!.slice(5)));
      }
      expect(heap.size).toBe(model.length);
    }
    expect(popped).toEqual(expected);
    model.sort((a, b) => a - b);
    const rest: number[] = [];
    for (let item = heap.pop(); item !== undefined; item = heap.pop()) rest.push(Number(item.slice(5)));
    expect(rest).toEqual(model);
    expect(heap.pop()).toBeUndefined();
  });
});
