import { atomicWriteFile } from '../../fs/atomicWriteFile.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { readJsonl } from '../../fs/readJsonl.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { OutboxRecord, type OutboxEntry } from './records.js';

/** Rewrite the journal once it holds this many finished entries and more finished than live ones. */
const COMPACT_MIN_DONE = 4096;

/**
 * The durable outbox `outbox.jsonl`: every outgoing message is `put` here
 * before `sendMessage` resolves and marked `done` once the server acked it (or
 * it failed or was cancelled). Replaying the journal gives the messages still
 * to send, in send order. Lines are idempotent, so a line replayed twice, or a
 * journal compacted while appends continue, changes nothing.
 */
export class OutboxJournal {
  readonly path: string;
  readonly #entries: Map<string, OutboxEntry>;
  #writer: JsonlWriter;
  #done: number;
  #compacting: Promise<void> | undefined;
  /** Set when a compaction replaced the file but could not reopen it: appends would be lost, so they fail. */
  #broken: Error | undefined;

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

  /** Messages still to send, oldest first. */
  entries(): IterableIterator<OutboxEntry> {
    return this.#entries.values();
  }

  get size(): number {
    return this.#entries.size;
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  get(id: string): OutboxEntry | undefined {
    return this.#entries.get(id);
  }

  /** Adds messages; resolves once they are durable (and forgets them again if writing failed). */
  async put(entries: readonly OutboxEntry[]): Promise<void> {
    for (const e of entries) this.#entries.set(e.id, e);
    try {
      await this.#append(entries.map((entry) => JSON.stringify({ op: 'put', entry } satisfies OutboxRecord)));
    } catch (err) {
      for (const e of entries) if (this.#entries.get(e.id) === e) this.#entries.delete(e.id);
      throw err;
    }
  }

  /** Removes messages that left the outbox; resolves once that is durable. */
  async done(ids: readonly string[], status: 'acked' | 'failed' | 'cancelled'): Promise<void> {
    const lines: string[] = [];
    for (const id of ids) {
      if (!this.#entries.delete(id)) continue;
      this.#done++;
      lines.push(JSON.stringify({ op: 'done', id, status } satisfies OutboxRecord));
    }
    if (lines.length === 0) return;
    await this.#append(lines);
    if (this.#done >= COMPACT_MIN_DONE && this.#done > this.#entries.size) this.#compacting ??= this.#compact();
  }

  /** Compacts if anything finished since the last compaction, then closes. */
  async close(): Promise<void> {
    while (this.#compacting) await this.#compacting;
    if (this.#done > 0 && !this.#broken) this.#compacting = this.#compact();
    await this.#compacting;
    await this.#writer.close();
  }

  async #append(lines: string[]): Promise<void> {
    // Nothing may reach the old file once compaction has snapshotted it: its inode is about to be replaced.
    while (this.#compacting) await this.#compacting;
    if (this.#broken) throw this.#broken;
    await this.#writer.append(lines);
  }

  /**
   * Rewrites the journal with only the live entries. A failure before the
   * rename leaves the old journal in use; a failure to reopen after it makes
   * the journal refuse appends rather than write into the replaced file.
   */
  async #compact(): Promise<void> {
    let replaced = false;
    try {
      await this.#writer.flush();
      // Snapshot taken synchronously: later puts and dones go to the new file and replay on top of it.
      const lines = [...this.#entries.values()].map((entry) => JSON.stringify({ op: 'put', entry } satisfies OutboxRecord));
      const old = this.#writer;
      await atomicWriteFile(this.path, lines.length ? `${lines.join('\n')}\n` : '');
      replaced = true;
      this.#writer = await JsonlWriter.open(this.path);
      this.#done = 0;
      await old.close();
    } catch (err) {
      if (replaced) this.#broken = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.#compacting = undefined;
    }
  }
}
