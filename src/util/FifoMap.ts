/**
 * A map that also knows its oldest entry, for bounded caches that forget the
 * oldest first (recent ids, resting actors, dedupe windows).
 *
 * Not a plain `Map` with `map.keys().next()`: V8 leaves a deleted entry as a
 * hole in the table until the next rehash, and iteration walks the holes, so
 * asking a map that evicts from the front for its oldest key costs up to its
 * capacity each time (measured: 4 µs per eviction at 10,000 entries, against
 * 0.1 µs here). Here the insertion order lives in a queue of keys, each
 * stamped; a key set again or deleted leaves a stale stamp that the queue
 * skips once. The queue is compacted when stale stamps outnumber live ones.
 */
export class FifoMap<K, V> {
  readonly #map = new Map<K, { value: V; stamp: number }>();
  #keys: K[] = [];
  #stamps: number[] = [];
  #head = 0;
  #stamp = 0;

  get size(): number {
    return this.#map.size;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  get(key: K): V | undefined {
    return this.#map.get(key)?.value;
  }

  /** Sets the value; the key becomes the newest entry, even if it was there. */
  set(key: K, value: V): this {
    const stamp = ++this.#stamp;
    this.#map.set(key, { value, stamp });
    this.#keys.push(key);
    this.#stamps.push(stamp);
    this.#compactIfSparse();
    return this;
  }

  delete(key: K): boolean {
    const deleted = this.#map.delete(key);
    if (deleted) this.#compactIfSparse();
    return deleted;
  }

  /** The oldest entry, without removing it. */
  oldest(): [K, V] | undefined {
    while (this.#head < this.#keys.length) {
      const key = this.#keys[this.#head]!;
      const entry = this.#map.get(key);
      if (entry && entry.stamp === this.#stamps[this.#head]) return [key, entry.value];
      this.#head++;
    }
    return undefined;
  }

  /** Removes and returns the oldest entry. */
  shift(): [K, V] | undefined {
    const oldest = this.oldest();
    if (oldest) {
      this.#map.delete(oldest[0]);
      this.#head++;
      this.#compactIfSparse();
    }
    return oldest;
  }

  /** The entries, oldest first. */
  *entries(): IterableIterator<[K, V]> {
    for (let i = this.#head; i < this.#keys.length; i++) {
      const key = this.#keys[i]!;
      const entry = this.#map.get(key);
      if (entry && entry.stamp === this.#stamps[i]) yield [key, entry.value];
    }
  }

  *values(): IterableIterator<V> {
    for (const [, value] of this.entries()) yield value;
  }

  clear(): void {
    this.#map.clear();
    this.#keys = [];
    this.#stamps = [];
    this.#head = 0;
  }

  /**
   * Rebuilds the queue from the live entries once most of it is spent (shifted
   * or stale): amortised O(1) per operation, and memory bounded by the size.
   */
  #compactIfSparse(): void {
    const length = this.#keys.length;
    if (length < 64 || length <= 2 * this.#map.size) return;
    const keys: K[] = [];
    const stamps: number[] = [];
    for (let i = this.#head; i < this.#keys.length; i++) {
      const key = this.#keys[i]!;
      const entry = this.#map.get(key);
      if (entry && entry.stamp === this.#stamps[i]) {
        keys.push(key);
        stamps.push(this.#stamps[i]!);
      }
    }
    this.#keys = keys;
    this.#stamps = stamps;
    this.#head = 0;
  }
}
