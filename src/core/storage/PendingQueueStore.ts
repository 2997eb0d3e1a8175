import { access } from 'node:fs/promises';
import { atomicWriteFile } from '../../fs/atomicWriteFile.js';
import { JsonFile } from '../../fs/JsonFile.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { readJsonl } from '../../fs/readJsonl.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { PendingFile, PendingLogRecord, type PendingItem } from './records.js';

/** Fold the log into the snapshot once it has this many lines and more lines than the queue has items. */
const COMPACT_MIN_LINES = 4096;

/**
 * The digital-employee pending queue: `queue/pending.json` is a snapshot
 * (the seed's file), `queue/pending.log.jsonl` the changes since (add, claim,
 * release, ack). Each change appends one short line, so draining a queue of N
 * messages costs O(N), not a rewrite of `pending.json` per message; the log is
 * folded into the snapshot when it grows past the queue's size, on open and
 * on close. Every log line is idempotent, so replaying the old log over a
 * fresh snapshot after a crash mid-compaction changes nothing (see
 * `PendingLogRecord`).
 */
export class PendingQueueStore {
  readonly #snapshot: JsonFile<typeof PendingFile>;
  readonly #logPath: string;
  readonly #items: Map<string, PendingItem>;
  #log: JsonlWriter;
  #logLines: number;
  /** Number of the latest claim. */
  #claimSeq: number;
  #compacting: Promise<void> | undefined;
  /** Set when a compaction replaced the log but could not reopen it. */
  #broken: Error | undefined;

  private constructor(snapshot: JsonFile<typeof PendingFile>, logPath: string, log: JsonlWriter, items: Map<string, PendingItem>, logLines: number) {
    this.#snapshot = snapshot;
    this.#logPath = logPath;
    this.#log = log;
    this.#items = items;
    this.#logLines = logLines;
    this.#claimSeq = 0;
    for (const item of items.values()) this.#claimSeq = Math.max(this.#claimSeq, item.claimSeq ?? 0);
  }

  /**
   * What the files say the queue holds, oldest first, without changing them
   * (the snapshot with the log replayed over it).
   */
  static async read(snapshotPath: string, logPath: string, onWarning?: WarningListener): Promise<PendingItem[]> {
    return [...(await load(snapshotPath, logPath, onWarning)).items.values()];
  }

  /** Loads the snapshot, replays the log over it and compacts. */
  static async open(snapshotPath: string, logPath: string, onWarning?: WarningListener): Promise<PendingQueueStore> {
    const snapshot = new JsonFile(snapshotPath, PendingFile);
    const { items, logLines, claimSeq } = await load(snapshotPath, logPath, onWarning);
    const store = new PendingQueueStore(snapshot, logPath, await JsonlWriter.open(logPath), items, logLines);
    store.#claimSeq = Math.max(store.#claimSeq, claimSeq);
    // Compacting also creates pending.json on first open, so the seed's layout is complete from the start.
    if (logLines > 0 || !(await exists(snapshotPath))) await store.compact();
    return store;
  }

  /** Every item, oldest first. */
  items(): IterableIterator<PendingItem> {
    return this.#items.values();
  }

  get(id: string): PendingItem | undefined {
    return this.#items.get(id);
  }

  has(id: string): boolean {
    return this.#items.has(id);
  }

  get size(): number {
    return this.#items.size;
  }

  /** Enqueues messages (ignoring ids already queued); resolves once durable. */
  add(items: readonly PendingItem[]): Promise<void> {
    return this.#change(items.filter((i) => !this.#items.has(i.message.id)).map((item) => ({ op: 'add', item })));
  }

  /** Marks messages claimed until `leaseUntil`. */
  claim(ids: readonly string[], leaseUntil: string): Promise<void> {
    return this.#change(ids.length ? [{ op: 'claim', seq: ++this.#claimSeq, ids: [...ids], leaseUntil }] : []);
  }

  /** Returns claimed messages to pending. */
  release(ids: readonly string[]): Promise<void> {
    return this.#change(ids.length ? [{ op: 'release', seq: this.#claimSeq, ids: [...ids] }] : []);
  }

  /** Removes processed messages from the queue. */
  ack(ids: readonly string[]): Promise<void> {
    return this.#change(ids.length ? [{ op: 'ack', ids: [...ids] }] : []);
  }

  /** Writes the snapshot and empties the log. */
  compact(): Promise<void> {
    this.#compacting ??= this.#compact();
    return this.#compacting;
  }

  /** Compacts and closes the log, so `pending.json` alone is exact after a clean close. */
  async close(): Promise<void> {
    await this.compact();
    await this.#log.close();
  }

  async #change(records: PendingLogRecord[]): Promise<void> {
    if (records.length === 0) return;
    for (const r of records) apply(this.#items, r);
    while (this.#compacting) await this.#compacting;
    this.#logLines += records.length;
    try {
      if (this.#broken) throw this.#broken;
      await this.#log.append(records.map((r) => JSON.stringify(r)));
    } catch (err) {
      // An add that is not on disk must not be handed out; other changes fail safe (the message stays queued on disk).
      for (const r of records) if (r.op === 'add' && this.#items.get(r.item.message.id) === r.item) this.#items.delete(r.item.message.id);
      throw err;
    }
    if (this.#logLines >= COMPACT_MIN_LINES && this.#logLines > this.#items.size) void this.compact().catch(() => {});
  }

  /**
   * Writes the snapshot, then empties the log. A failure before the log is
   * replaced leaves the old log in use; a failure to reopen it afterwards
   * makes later changes fail rather than go to the replaced file.
   */
  async #compact(): Promise<void> {
    let replaced = false;
    try {
      await this.#log.flush();
      await this.#snapshot.write({ version: 1, items: [...this.#items.values()] });
      // Only now is the log redundant; a crash before this line replays it over the new snapshot harmlessly.
      const old = this.#log;
      await atomicWriteFile(this.#logPath, '');
      replaced = true;
      this.#log = await JsonlWriter.open(this.#logPath);
      this.#logLines = 0;
      await old.close();
    } catch (err) {
      if (replaced) this.#broken = err instanceof Error ? err : new Error(String(err));
      else throw err;
    } finally {
      this.#compacting = undefined;
    }
  }
}

async function load(snapshotPath: string, logPath: string, onWarning?: WarningListener) {
  const items = new Map<string, PendingItem>();
  for (const item of (await new JsonFile(snapshotPath, PendingFile).read())?.items ?? []) items.set(item.message.id, item);
  let logLines = 0;
  let claimSeq = 0;
  for await (const { value } of readJsonl(logPath, PendingLogRecord, { onWarning })) {
    apply(items, value);
    if (value.op === 'claim') claimSeq = Math.max(claimSeq, value.seq);
    logLines++;
  }
  return { items, logLines, claimSeq };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function apply(items: Map<string, PendingItem>, record: PendingLogRecord): void {
  switch (record.op) {
    case 'add':
      if (!items.has(record.item.message.id)) items.set(record.item.message.id, record.item);
      return;
    case 'claim':
      for (const id of record.ids) {
        const item = items.get(id);
        if (item && (item.claimSeq ?? 0) < record.seq) {
          item.claimSeq = record.seq;
          item.leaseUntil = record.leaseUntil;
          item.attempts++;
        }
      }
      return;
    case 'release':
      for (const id of record.ids) {
        const item = items.get(id);
        if (item && (item.claimSeq ?? 0) <= record.seq) delete item.leaseUntil;
      }
      return;
    case 'ack':
      for (const id of record.ids) items.delete(id);
      return;
  }
}

