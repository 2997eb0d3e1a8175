/**
 * A binary min-heap of items ordered by a numeric key: push and pop in
 * O(log n). The outbox uses it to send the oldest waiting message first,
 * whether it is new or coming back after a lost connection.
 */
export class MinHeap<T> {
  readonly #keys: number[] = [];
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  push(key: number, item: T): void {
    this.#keys.push(key);
    this.#items.push(item);
    let i = this.#items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.#keys[parent]! <= key) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  pop(): T | undefined {
    const n = this.#items.length;
    if (n === 0) return undefined;
    const top = this.#items[0];
    this.#swap(0, n - 1);
    this.#keys.pop();
    this.#items.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < n - 1 && this.#keys[l]! < this.#keys[min]!) min = l;
      if (r < n - 1 && this.#keys[r]! < this.#keys[min]!) min = r;
      if (min === i) break;
      this.#swap(i, min);
      i = min;
    }
    return top;
  }

  #swap(a: number, b: number): void {
    [this.#keys[a], this.#keys[b]] = [this.#keys[b]!, this.#keys[a]!];
    [this.#items[a], this.#items[b]] = [this.#items[b]!, this.#items[a]!];
  }
}
