/**
 * A map from ids (strings of one-byte characters, at most 255 of them, such
 * as message ids) to numbers, held in buffers outside V8's heap: for the
 * outbox's record of spilled messages, the one part of a long queue that
 * memory holds for every message.
 *
 * Why not a `Map`: V8 sizes its old generation after each full collection at
 * up to four times what survived it, so every byte a long queue keeps on the
 * heap costs up to four bytes of RSS while the client sends at full speed. A
 * `Map` of 90,000 ids held about 80 bytes per id on the heap (the table entry
 * and the string). Here an id costs its characters, one length byte and an
 * 8-byte value in an append-only byte arena (31 bytes for a generated message
 * id), and 8 bytes per slot of an open-addressing table (its arena offset and
 * hash): with the arena's room to grow and the table's empty slots, 45 to 75
 * bytes (73 at 100,000 ids), outside the heap, counted once ({@link bytes}).
 * Nothing is allocated on the heap per entry.
 *
 * The table probes linearly, at most three quarters full, and deletes by
 * moving later entries of the same run back (no tombstones). Deleted keys
 * leave their bytes in the arena. When the arena is full and at least a
 * quarter of it is dead, the live entries are moved down in place; it is replaced by
 * a smaller one only once an eighth of it or less is live. Growing the table
 * leaves the arena as it is. So a map whose keys come and go (a queue spilled
 * and read back, generations of status records cleared and reused) allocates
 * nothing once it has reached its size, for as long as it holds about as many
 * keys: every buffer it drops waits for a full collection (its wrapper is
 * long-lived), and until then it counts in the process's memory. One that
 * loses most of its keys (a drained queue) gives the room back, and grows
 * anew if they come back. Keys can be looked up in place, inside a longer
 * string ({@link hasIn}), without being sliced out of it.
 */
export class OffHeapIdMap {
  /** Per table slot: the arena offset of its entry plus one (0: empty). */
  #slots: Int32Array;
  /** Per table slot: the hash of its key. */
  #hashes: Int32Array;
  #mask: number;
  /** Entries: a length byte, the key's characters, then the value as a float64 (little-endian). */
  #arena: Buffer;
  #end = 0;
  /** Bytes of deleted entries still in the arena. */
  #dead = 0;
  #size = 0;

  constructor(capacity = 16) {
    const slots = tableSize(capacity);
    this.#slots = new Int32Array(slots);
    this.#hashes = new Int32Array(slots);
    this.#mask = slots - 1;
    this.#arena = Buffer.allocUnsafe(Math.max(256, capacity * 40));
  }

  get size(): number {
    return this.#size;
  }

  /** Bytes held outside the heap: the arena and the table, used or not. */
  get bytes(): number {
    return this.#arena.length + this.#slots.byteLength + this.#hashes.byteLength;
  }

  has(key: string): boolean {
    if (this.#size === 0) return false;
    return this.#find(key, 0, key.length, hashOf(key, 0, key.length)) >= 0;
  }

  /** Whether `text.slice(start, end)` is a key, without slicing it. */
  hasIn(text: string, start: number, end: number): boolean {
    if (this.#size === 0 || start < 0 || end > text.length || end < start) return false;
    return this.#find(text, start, end, hashOf(text, start, end)) >= 0;
  }

  get(key: string): number | undefined {
    if (this.#size === 0) return undefined;
    const slot = this.#find(key, 0, key.length, hashOf(key, 0, key.length));
    // The value follows the key: at the entry's offset (slot value - 1) + 1 + length.
    return slot < 0 ? undefined : this.#arena.readDoubleLE(this.#slots[slot]! + key.length);
  }

  set(key: string, value: number): this {
    const length = key.length;
    if (length > 255) throw new RangeError(`OffHeapIdMap keys are at most 255 characters (got ${length})`);
    const hash = hashOf(key, 0, length);
    const found = this.#find(key, 0, length, hash);
    if (found >= 0) {
      this.#arena.writeDoubleLE(value, this.#slots[found]! + length);
      return this;
    }
    if ((this.#size + 1) * 4 > (this.#mask + 1) * 3) this.#resizeTable(2 * (this.#mask + 1));
    const bytes = 1 + length + 8;
    if (this.#end + bytes > this.#arena.length) this.#growArena(bytes);
    const at = this.#end;
    const arena = this.#arena;
    // Checked and copied in one pass (a short key costs less so than a call to Buffer#write); a
    // refused key leaves nothing behind, since #end has not moved.
    for (let i = 0; i < length; i++) {
      const c = key.charCodeAt(i);
      if (c > 0xff) throw new RangeError('OffHeapIdMap keys are one-byte strings');
      arena[at + 1 + i] = c;
    }
    arena[at] = length;
    arena.writeDoubleLE(value, at + 1 + length);
    this.#end += bytes;
    let slot = hash & this.#mask;
    while (this.#slots[slot] !== 0) slot = (slot + 1) & this.#mask;
    this.#slots[slot] = at + 1;
    this.#hashes[slot] = hash;
    this.#size++;
    return this;
  }

  delete(key: string): boolean {
    if (this.#size === 0) return false;
    let i = this.#find(key, 0, key.length, hashOf(key, 0, key.length));
    if (i < 0) return false;
    this.#dead += 1 + key.length + 8;
    this.#size--;
    // Later entries of the run whose home slot is not between the hole and them move into the hole.
    const mask = this.#mask;
    const slots = this.#slots;
    const hashes = this.#hashes;
    for (let j = (i + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const home = hashes[j]! & mask;
      const stays = i <= j ? i < home && home <= j : i < home || home <= j;
      if (stays) continue;
      slots[i] = slots[j]!;
      hashes[i] = hashes[j]!;
      i = j;
    }
    slots[i] = 0;
    hashes[i] = 0;
    const size = this.#size;
    if (size === 0) {
      this.#end = 0;
      this.#dead = 0;
    }
    if (mask + 1 > 16 && size * 8 < mask + 1) this.#resizeTable(tableSize(2 * size));
    const live = this.#end - this.#dead;
    if (this.#arena.length > SHRINK_MIN_BYTES && live * 8 <= this.#arena.length) this.#shrinkArena();
    return true;
  }

  /** Removes every key, keeping the buffers for the keys to come. */
  clear(): void {
    this.#slots.fill(0);
    this.#hashes.fill(0);
    this.#end = 0;
    this.#dead = 0;
    this.#size = 0;
  }

  /** The slot holding `text.slice(start, end)`, or -1. */
  #find(text: string, start: number, end: number, hash: number): number {
    const length = end - start;
    const slots = this.#slots;
    const hashes = this.#hashes;
    const arena = this.#arena;
    const mask = this.#mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = slots[slot]!;
      if (entry === 0) return -1;
      if (hashes[slot] !== hash) continue;
      const at = entry - 1;
      if (arena[at] !== length) continue;
      let i = 0;
      while (i < length && arena[at + 1 + i] === text.charCodeAt(start + i)) i++;
      if (i === length) return slot;
    }
  }

  /** A table of `slots` slots holding the same entries (the arena stays as it is). */
  #resizeTable(slots: number): void {
    const old = this.#slots;
    const oldHashes = this.#hashes;
    const table = new Int32Array(slots);
    const hashes = new Int32Array(slots);
    const mask = slots - 1;
    for (let s = 0; s < old.length; s++) {
      const entry = old[s]!;
      if (entry === 0) continue;
      const hash = oldHashes[s]!;
      let slot = hash & mask;
      while (table[slot] !== 0) slot = (slot + 1) & mask;
      table[slot] = entry;
      hashes[slot] = hash;
    }
    this.#slots = table;
    this.#hashes = hashes;
    this.#mask = mask;
  }

  /**
   * Moves the live entries to the front of the arena, in their order, and
   * points their slots at their new places. An entry is live when a slot
   * points at it (a deleted key set again has a newer entry further on).
   * Entries only move down, so a slot never points at an entry not yet visited.
   */
  #compact(): void {
    const arena = this.#arena;
    const slots = this.#slots;
    const mask = this.#mask;
    const end = this.#end;
    let write = 0;
    for (let at = 0; at < end; ) {
      const length = arena[at]!;
      const bytes = 1 + length + 8;
      let slot = hashOfBytes(arena, at + 1, at + 1 + length) & mask;
      while (slots[slot] !== 0 && slots[slot] !== at + 1) slot = (slot + 1) & mask;
      if (slots[slot] !== 0) {
        if (write !== at) {
          arena.copyWithin(write, at, at + bytes);
          slots[slot] = write + 1;
        }
        write += bytes;
      }
      at += bytes;
    }
    this.#end = write;
    this.#dead = 0;
  }

  /** A smaller arena (twice the live bytes) for a map that has lost most of its keys. */
  #shrinkArena(): void {
    this.#compact();
    const next = Buffer.allocUnsafe(Math.max(256, 2 * this.#end));
    this.#arena.copy(next, 0, 0, this.#end);
    this.#arena = next;
  }

  /** Room for `bytes` more at the end of the arena: made by compacting it when a quarter of it is dead, else by growing it. */
  #growArena(bytes: number): void {
    if (this.#dead * 4 >= this.#end) {
      this.#compact();
      if (this.#end + bytes <= this.#arena.length) return;
    }
    const next = Buffer.allocUnsafe(Math.max(2 * this.#arena.length, this.#end + bytes));
    this.#arena.copy(next, 0, 0, this.#end);
    this.#arena = next;
  }
}

/** Arenas at most this big are never replaced by a smaller one. */
const SHRINK_MIN_BYTES = 64 * 1024;

/** The smallest power of two that holds `count` entries at most three quarters full (at least 16). */
function tableSize(count: number): number {
  let size = 16;
  while (size * 3 < count * 4) size *= 2;
  return size;
}

/** {@link hashOf} of a key's bytes in the arena (one byte per character). */
function hashOfBytes(bytes: Buffer, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return mix(h);
}

/** FNV-1a over the characters, then mixed (murmur3's finaliser) so that the low bits index well. */
function hashOf(text: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return mix(h);
}

/** murmur3's finaliser. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
