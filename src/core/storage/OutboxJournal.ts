import { atomicWriteFile, replacedDespite } from '../../fs/atomicWriteFile.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { LineCursor } from '../../fs/LineCursor.js';
import { parseLine, readJsonl, readJsonlBatches } from '../../fs/readJsonl.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { putLine } from '../../util/jsonText.js';
import { OffHeapIdMap } from '../../util/OffHeapIdMap.js';
import { OutboxRecord, type OutboxEntry } from './records.js';

/** A spilled message read back, with the order key it was spilled with. */
export interface SpilledEntry {
  entry: OutboxEntry;
  order: number;
}

/** A `put` line, as this journal writes them (the spilled ones are known valid). */
const isPut = (value: unknown): boolean =>
  typeof value === 'object' && value !== null && (value as { op?: unknown }).op === 'put' && typeof (value as { entry?: { id?: unknown } }).entry?.id === 'string';

/** How every `put` line this journal writes begins: the entry's id comes first. */
const PUT_PREFIX = '{"op":"put","entry":{"id":"';

/** Rewrite the journal once it holds this many finished entries and more finished than live ones. */
const COMPACT_MIN_DONE = 4096;

/**
 * The durable outbox `outbox.jsonl`: every outgoing message is `put` here
 * before `sendMessage` resolves, and forgotten in memory once its final
 * status line (acked, delivered, failed, cancelled) is durable in its
 * conversation file, which is the record that it left. Replaying the journal
 * gives the messages that may still need sending, in send order (the outbox
 * drops those whose status line exists); `done` lines of earlier versions are
 * still honoured. Lines are idempotent, so a line replayed twice, or a journal
 * compacted while appends continue, changes nothing.
 *
 * Messages can be **spilled**: their entries are dropped from memory and
 * stay only in the file (their ids, with the caller's order key, in a map
 * outside V8's heap: the one record of which messages are spilled), to be read back with
 * {@link readSpilled} when their turn comes. A long offline queue then costs
 * memory per message for its id, not its text. The journal is not compacted
 * while anything is spilled (compaction rewrites it from memory).
 */
export class OutboxJournal {
  readonly path: string;
  readonly #entries: Map<string, OutboxEntry>;
  /**
   * Messages whose entries are only in the file: id to the order key given with {@link spill}.
   * Off V8's heap: a long queue holds this for every spilled message (see {@link OffHeapIdMap}).
   */
  readonly #spilled = new OffHeapIdMap();
  /**
   * Messages put while others were spilled, and neither spilled nor finished since (a put under
   * way, or one the journal refused to spill while it compacted): they come after the spilled
   * ones in send order, so messages read back are placed before them in {@link #entries}, whose
   * order a compaction writes. Empty but for those moments.
   */
  readonly #putWhileSpilled = new Set<string>();
  /** Spilled messages taken out of the queue by a receipt, until their status line is durable ({@link finish}). */
  readonly #forgotten = new Set<string>();
  /**
   * The batches of `put`s waiting for a compaction to end (not in the old
   * file, and not yet in the new): a set per batch, only while one waits.
   */
  readonly #waiting = new Set<readonly OutboxEntry[]>();
  #writer: JsonlWriter;
  #done: number;
  #compacting: Promise<void> | undefined;
  /** Set when a compaction replaced the file but could not reopen it: appends would be lost, so they fail. */
  #broken: Error | undefined;
  /** Where the refill's reads of spilled entries carry on ({@link readSpilled}); closed before a compaction replaces the file. */
  #cursor: LineCursor | undefined;

  private constructor(path: string, writer: JsonlWriter, entries: Map<string, OutboxEntry>, done: number) {
    this.path = path;
    this.#writer = writer;
    this.#entries = entries;
    this.#done = done;
  }

  /** Opens the journal and replays it. */
  static async open(path: string, onWarning?: WarningListener): Promise<OutboxJournal> {
    const entries = new Map<string, OutboxEntry>();
    let done = 0;
    for await (const { value } of readJsonl(path, OutboxRecord, { onWarning })) {
      if (value.op === 'put') {
        // A later put of the same id (a compaction racing appends) carries the same message.
        entries.set(value.entry.id, value.entry);
      } else {
        if (entries.delete(value.id)) done++;
      }
    }
    const journal = new OutboxJournal(path, await JsonlWriter.open(path), entries, done);
    if (done > 0) await journal.#compact();
    return journal;
  }

  /** Messages still to send whose entries are in memory (not spilled), oldest first. */
  entries(): IterableIterator<OutboxEntry> {
    return this.#entries.values();
  }

  /** Messages still to send, spilled or not. */
  get size(): number {
    return this.#entries.size + this.#spilled.size;
  }

  has(id: string): boolean {
    return this.#entries.has(id) || this.#spilled.has(id);
  }

  get(id: string): OutboxEntry | undefined {
    return this.#entries.get(id);
  }

  /**
   * Adds messages; resolves once they are durable (and forgets them again if
   * writing failed) with the byte offset of their first line.
   */
  async put(entries: readonly OutboxEntry[]): Promise<number> {
    // A message already here (durable, or being put) stays as it is: a put of it again carries the
    // same message, and must not take the durable entry's place (nor, failing, its memory).
    const behindSpilled = this.#spilled.size > 0;
    for (const e of entries) {
      if (this.#entries.has(e.id)) continue;
      this.#entries.set(e.id, e);
      if (behindSpilled) this.#putWhileSpilled.add(e.id);
    }
    try {
      return await this.#append(entries.map(putLine), entries);
    } catch (err) {
      for (const e of entries) {
        if (this.#entries.get(e.id) !== e) continue;
        this.#entries.delete(e.id);
        this.#putWhileSpilled.delete(e.id);
      }
      throw err;
    }
  }

  /**
   * Forgets messages that left the outbox (acked, failed, cancelled). Nothing
   * is written: the message's status line in its conversation file is what
   * records that it left, and it is durable before this is called. Opening
   * the outbox checks the journal's entries against those lines (see
   * `Outbox.start`), and the next compaction drops their `put` lines.
   */
  finish(ids: Iterable<string>): void {
    for (const id of ids) {
      if (this.#putWhileSpilled.size > 0) this.#putWhileSpilled.delete(id);
      if (this.#entries.delete(id) || this.#spilled.delete(id) || this.#forgotten.delete(id)) this.#done++;
    }
    this.#noLongerBehind();
    if (this.#done >= COMPACT_MIN_DONE && this.#done > this.#entries.size && this.#spilled.size === 0) this.#compacting ??= this.#compact();
  }

  /**
   * Drops these messages' entries from memory: they stay in the file until
   * read back with {@link readSpilled}, which hands each back with its order
   * key (the caller's place for it in its queue). Refused (false) while the
   * journal is being compacted: compaction rewrites the file from memory, and
   * the file's offsets change.
   */
  spill(items: Iterable<readonly [id: string, order: number]>): boolean {
    if (this.#compacting) return false;
    for (const [id, order] of items) {
      if (this.#entries.delete(id)) this.#spilled.set(id, order);
      if (this.#putWhileSpilled.size > 0) this.#putWhileSpilled.delete(id);
    }
    return true;
  }

  /** How many messages are spilled. */
  get spilled(): number {
    return this.#spilled.size;
  }

  /**
   * Takes a spilled message out of the queue without reading it back (its
   * receipt came: it was delivered). Its `put` line stays until the status
   * line that records this is durable ({@link finish}).
   */
  forgetSpilled(id: string): boolean {
    if (!this.#spilled.delete(id)) return false;
    this.#forgotten.add(id);
    this.#noLongerBehind();
    return true;
  }

  /** Once nothing is spilled, nothing can be read back ahead of the puts made while something was. */
  #noLongerBehind(): void {
    if (this.#spilled.size === 0 && this.#putWhileSpilled.size > 0) this.#putWhileSpilled.clear();
  }

  /** Whether the message's entry is only in the file. */
  isSpilled(id: string): boolean {
    return this.#spilled.has(id);
  }

  /**
   * Finds spilled entries in the file: at most `limit`, in file order, from
   * byte `from` (the offset of the first spilled line, or any earlier line),
   * or only those in `only`. Resolves with them and the offset to continue
   * from next time; they stay spilled until {@link unspill} takes them back
   * into memory (a read that fails changes nothing). Reads of all spilled entries must not
   * overlap: they carry on through one cursor (the outbox runs its read-backs one at a time).
   */
  async readSpilled(from: number, limit: number, only?: ReadonlySet<string>): Promise<{ found: OutboxEntry[]; next: number }> {
    const found: OutboxEntry[] = [];
    if (!only) {
      // The refill's reads follow one another through the file: a cursor kept open carries on
      // from the last line taken, with the bytes it read past it.
      if (limit < 1 || this.#spilled.size === 0) return { found, next: from };
      const cursor = (this.#cursor ??= new LineCursor(this.path));
      // Spilled entries are durable, so within what the writer has settled: bytes past it may
      // still be taken back (a failed append), and the cursor must not keep them.
      const next = await cursor.read(from, this.#writer.settledLength, (text) => {
        if (this.#mayHold(text, undefined)) {
          // Spilled entries were validated before they were written (or when the journal was
          // opened): their lines are taken as parsed. No warnings: a line may have been torn by a
          // crash before the journal was last opened.
          const parsed = parseLine(text, OutboxRecord, isPut);
          if (parsed.ok && parsed.value.op === 'put' && this.#spilled.has(parsed.value.entry.id)) found.push(parsed.value.entry);
        }
        return found.length < limit && found.length < this.#spilled.size;
      });
      return { found, next };
    }
    // Reading chosen ids skips others: the next read must still start at `from`.
    // No warnings: a line being appended right now may look torn; the journal was checked on open.
    const select = (text: string) => this.#mayHold(text, only);
    read: for await (const batch of readJsonlBatches(this.path, OutboxRecord, { start: from, trusted: isPut, select })) {
      for (const { value } of batch) {
        if (found.length >= limit || found.length >= this.#spilled.size) break read;
        if (value.op !== 'put' || !only.has(value.entry.id) || !this.#spilled.has(value.entry.id)) continue;
        found.push(value.entry);
      }
    }
    return { found, next: from };
  }

  /**
   * Looks through the spilled entries from byte `from` on (as {@link readSpilled}) for
   * those whose time to live ran out by `now` (epoch ms), leaving them spilled: their ids,
   * and the earliest expiry of the others (`Infinity` if none expires). Each spilled line is
   * parsed, so this is for a sweep that knows something is due, not for every sweep.
   */
  async spilledExpiries(from: number, now: number): Promise<{ due: string[]; earliest: number }> {
    const due: string[] = [];
    let earliest = Infinity;
    const select = (text: string) => this.#mayHold(text, undefined);
    for await (const batch of readJsonlBatches(this.path, OutboxRecord, { start: from, trusted: isPut, select })) {
      for (const { value } of batch) {
        if (value.op !== 'put' || value.entry.expiresAt === undefined || !this.#spilled.has(value.entry.id)) continue;
        const at = Date.parse(value.entry.expiresAt);
        if (at <= now) due.push(value.entry.id);
        else if (at < earliest) earliest = at;
      }
    }
    return { due, earliest };
  }

  /**
   * Takes entries found by {@link readSpilled} back into memory, each with
   * its order key: those still spilled (one finished since, by a receipt,
   * or a second put of the same id, is left out).
   */
  unspill(found: readonly OutboxEntry[]): SpilledEntry[] {
    const entries: SpilledEntry[] = [];
    for (const entry of found) {
      const order = this.#spilled.get(entry.id);
      if (order === undefined) continue;
      this.#spilled.delete(entry.id);
      this.#entries.set(entry.id, entry);
      entries.push({ entry, order });
    }
    // Those put while these were spilled go after them again.
    if (entries.length > 0 && this.#putWhileSpilled.size > 0) {
      for (const id of this.#putWhileSpilled) {
        const later = this.#entries.get(id);
        if (later === undefined) continue;
        this.#entries.delete(id);
        this.#entries.set(id, later);
      }
    }
    this.#noLongerBehind();
    return entries;
  }

  /**
   * The entry of a spilled message, from byte `from` on, left spilled (a look
   * at it, not a read-back: reading one back early would put it ahead of the
   * messages spilled before it).
   */
  async peekSpilled(from: number, id: string): Promise<OutboxEntry | undefined> {
    if (!this.#spilled.has(id)) return undefined;
    const only = new Set([id]);
    const select = (text: string) => this.#mayHold(text, only);
    for await (const batch of readJsonlBatches(this.path, OutboxRecord, { start: from, trusted: isPut, select })) {
      for (const { value } of batch) if (value.op === 'put' && value.entry.id === id) return value.entry;
    }
    return undefined;
  }

  /**
   * Whether a raw line can be the put of a spilled entry wanted now; `done`
   * lines and puts of other messages are skipped without being parsed (a
   * long queue read back while sending is mostly such lines). Ids cannot
   * hold a quote, so the one in a put line ends at the next quote; a line of
   * any other shape is parsed and decided as before.
   */
  #mayHold(text: string, only: ReadonlySet<string> | undefined): boolean {
    if (text.startsWith('{"op":"done"')) return false;
    if (!text.startsWith(PUT_PREFIX)) return true;
    const end = text.indexOf('"', PUT_PREFIX.length);
    // Looked up in place: no string is made for a line that is skipped.
    if (!this.#spilled.hasIn(text, PUT_PREFIX.length, end)) return false;
    return only === undefined || only.has(text.slice(PUT_PREFIX.length, end));
  }

  /** Compacts if anything finished since the last compaction, then closes. */
  async close(): Promise<void> {
    while (this.#compacting) await this.#compacting;
    if (this.#done > 0 && !this.#broken && this.#spilled.size === 0) this.#compacting = this.#compact();
    await this.#compacting;
    await this.#closeCursor();
    await this.#writer.close();
  }

  async #closeCursor(): Promise<void> {
    const cursor = this.#cursor;
    this.#cursor = undefined;
    await cursor?.close();
  }

  /**
   * Appends lines; resolves once they are durable with an offset at or before
   * the first (exactly it, unless a batch written before them failed).
   */
  async #append(lines: string[], entries: readonly OutboxEntry[]): Promise<number> {
    // Nothing may reach the old file once compaction has snapshotted it: its inode is about to be replaced.
    if (this.#compacting) {
      this.#waiting.add(entries);
      try {
        while (this.#compacting) await this.#compacting;
      } finally {
        this.#waiting.delete(entries);
      }
    }
    if (this.#broken) throw this.#broken;
    const offset = this.#writer.settledLength;
    await this.#writer.append(lines);
    return offset;
  }

  /**
   * Rewrites the journal with only the live entries. A failure before the
   * rename leaves the old journal in use; a failure to reopen after it makes
   * the journal refuse appends rather than write into the replaced file.
   */
  async #compact(): Promise<void> {
    let replaced = false;
    try {
      // Nothing is spilled (or compaction would not start), so nothing is read back; the
      // next spill is read from the new file.
      await this.#closeCursor();
      await this.#writer.flush();
      // Snapshot taken synchronously: later puts and dones go to the new file and replay on top of it.
      // A put still waiting is left to its own append: if that fails, its caller is told the message
      // was not queued, and no file may send it after a restart.
      const waiting = new Set<OutboxEntry>();
      for (const batch of this.#waiting) for (const e of batch) waiting.add(e);
      const lines: string[] = [];
      for (const e of this.#entries.values()) if (!waiting.has(e)) lines.push(putLine(e));
      const old = this.#writer;
      await atomicWriteFile(this.path, lines.length ? `${lines.join('\n')}\n` : '');
      replaced = true;
      this.#writer = await JsonlWriter.open(this.path);
      this.#done = 0;
      await old.close();
    } catch (err) {
      // Replaced, even if the call failed after its rename: puts must not go to the old journal's inode.
      if (replaced || replacedDespite(err)) this.#broken = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.#compacting = undefined;
    }
  }
}
