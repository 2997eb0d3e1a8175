/**
 * A bounded map of recent entries that forgets in bulk. Keys are set in the
 * current generation; once it holds half the capacity it becomes the old
 * generation, and the old one before it is dropped whole. So it holds at
 * most `capacity` entries and always the last `capacity / 2` keys set.
 *
 * For caches on the path of every message (recent statuses, acked messages
 * awaiting their receipt, recently delivered ids), where {@link FifoMap}'s
 * exact order costs an array slot, an index entry and periodic compaction per
 * key: here a `set` is one plain `Map` operation (a key set again goes into
 * the current generation, shadowing its old value, which is dropped with its
 * generation), a lookup one or two, and what is forgotten goes with its map.
 */
export class RecentMap<K, V> {
  readonly #generation: number;
  readonly #onDrop: ((dropped: ReadonlyMap<K, V>) => void) | undefined;
  #current = new Map<K, V>();
  #old = new Map<K, V>();

  /** `onDrop` receives each generation forgotten (not entries deleted or cleared). */
  constructor(capacity: number, onDrop?: (dropped: ReadonlyMap<K, V>) => void) {
    this.#generation = Math.max(1, Math.ceil(capacity / 2));
    this.#onDrop = onDrop;
  }

  /** Entries held, counting a key set again in both generations twice. */
  get size(): number {
    return this.#current.size + this.#old.size;
  }

  has(key: K): boolean {
    return this.#current.has(key) || this.#old.has(key);
  }

  get(key: K): V | undefined {
    const value = this.#current.get(key);
    return value !== undefined || this.#current.has(key) ? value : this.#old.get(key);
  }

  /** Sets the value in the current generation (where a lookup finds it first). */
  set(key: K, value: V): this {
    this.#current.set(key, value);
    if (this.#current.size >= this.#generation) {
      const dropped = this.#old;
      this.#old = this.#current;
      this.#current = new Map();
      if (dropped.size > 0 && this.#onDrop) {
        // Keys set again since are not forgotten: only their old values are.
        for (const key of dropped.keys()) if (this.#old.has(key)) dropped.delete(key);
        if (dropped.size > 0) this.#onDrop(dropped);
      }
    }
    return this;
  }

  delete(key: K): boolean {
    const current = this.#current.delete(key);
    return this.#old.delete(key) || current;
  }

  clear(): void {
    this.#current = new Map();
    this.#old = new Map();
  }
}
