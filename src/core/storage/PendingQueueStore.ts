import { access } from 'node:fs/promises';
// Node's own: a test's fake timers (which replace the global one) do not hold undos back.
import { setImmediate } from 'node:timers';
import { IMClientError } from '../../errors.js';
import { atomicWriteFile } from '../../fs/atomicWriteFile.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { readJsonl } from '../../fs/readJsonl.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { PendingSnapshot } from './PendingSnapshot.js';
import { PendingLogRecord, pendingKey, type PendingItem } from './records.js';

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
 *
 * Items are keyed by sender and message id (`pendingKey`): message ids are
 * unique per sender, so two senders' messages with the same id are two items.
 */
export class PendingQueueStore {
  readonly #snapshotPath: string;
  readonly #logPath: string;
  readonly #items: Items;
  #log: JsonlWriter;
  #logLines: number;
  /** Number of the latest claim. */
  #claimSeq: number;
  #compacting: Promise<void> | undefined;
  /** Set when a compaction replaced the log but could not reopen it. */
  #broken: Error | undefined;
  /** Changes made so far (their order, for undoing them newest first). */
  #changes = 0;
  /** Failed changes waiting to be undone together, and the undo that will do it. */
  #undos: Undo[] = [];
  #undoing: Promise<void> | undefined;
  #closing = false;
  /** Changes applied and not yet settled (appended, or undone after a failure). */
  readonly #inflight = new Set<Promise<void>>();
  /** Lines of changes made while a compaction ran, in the order made: appended when it ends. */
  #held: HeldLines[] = [];
  /** The change writing each item's add, while it is written: a second add of it waits for it. */
  readonly #adding = new Map<string, Promise<void>>();

  private constructor(snapshotPath: string, logPath: string, log: JsonlWriter, items: Items, logLines: number) {
    this.#snapshotPath = snapshotPath;
    this.#logPath = logPath;
    this.#log = log;
    this.#items = items;
    this.#logLines = logLines;
    this.#claimSeq = 0;
    for (const item of items.byKey.values()) this.#claimSeq = Math.max(this.#claimSeq, item.claimSeq ?? 0);
  }

  /**
   * What the files say the queue holds, oldest first, without changing them
   * (the snapshot with the log replayed over it).
   */
  static async read(snapshotPath: string, logPath: string, onWarning?: WarningListener): Promise<PendingItem[]> {
    return [...(await load(snapshotPath, logPath, onWarning)).items.byKey.values()];
  }

  /** Loads the snapshot, replays the log over it and compacts. */
  static async open(snapshotPath: string, logPath: string, onWarning?: WarningListener): Promise<PendingQueueStore> {
    const { items, logLines, claimSeq } = await load(snapshotPath, logPath, onWarning);
    const store = new PendingQueueStore(snapshotPath, logPath, await JsonlWriter.open(logPath), items, logLines);
    store.#claimSeq = Math.max(store.#claimSeq, claimSeq);
    // Compacting also creates pending.json on first open, so the seed's layout is complete from the start.
    if (logLines > 0 || !(await exists(snapshotPath))) await store.compact();
    return store;
  }

  /** Every item, oldest first. */
  items(): IterableIterator<PendingItem> {
    return this.#items.byKey.values();
  }

  /** Every item with its key, oldest first. */
  entries(): IterableIterator<[key: string, item: PendingItem]> {
    return this.#items.byKey.entries();
  }

  /** The item with this key (`pendingKey(from, id)`). */
  get(key: string): PendingItem | undefined {
    return this.#items.byKey.get(key);
  }

  has(key: string): boolean {
    return this.#items.byKey.has(key);
  }

  /** The keys of the queued items with this message id: one, none, or one per sender that used it. */
  keysOf(id: string): readonly string[] {
    return this.#items.keysOf(id);
  }

  get size(): number {
    return this.#items.byKey.size;
  }

  /**
   * Enqueues messages (ignoring those already queued, by sender and id);
   * resolves once durable, its own and those of them another add is still
   * writing (and rejects if that one fails).
   */
  add(items: readonly PendingItem[]): Promise<void> {
    const fresh: string[] = [];
    const records: PendingLogRecord[] = [];
    let others: Promise<void>[] | undefined;
    for (const item of items) {
      const key = keyOf(item);
      const writing = this.#adding.get(key);
      if (writing) (others ??= []).push(writing);
      else if (!this.#items.byKey.has(key)) {
        fresh.push(key);
        records.push({ op: 'add', item });
      }
    }
    let change = this.#change(records);
    if (fresh.length > 0) {
      // Forgotten before the caller hears how it went: an add it retries at once is its own.
      change = change.finally(() => {
        for (const key of fresh) if (this.#adding.get(key) === change) this.#adding.delete(key);
      });
      for (const key of fresh) this.#adding.set(key, change);
    }
    return others ? Promise.all([change, ...others]).then(() => {}) : change;
  }

  /** Marks items (by key) claimed until `leaseUntil`. */
  claim(keys: readonly string[], leaseUntil: string): Promise<void> {
    return this.#change(keys.length ? [{ op: 'claim', seq: ++this.#claimSeq, ids: [...keys], leaseUntil }] : []);
  }

  /**
   * Moves the deadline of the claims holding these items (by key) to
   * `leaseUntil`: the same claims, not new ones (`attempts` stays). One line
   * per claim number among them; an item not claimed is left alone.
   */
  extend(keys: readonly string[], leaseUntil: string): Promise<void> {
    const bySeq = new Map<number, string[]>();
    for (const key of keys) {
      const item = this.#items.byKey.get(key);
      if (item?.leaseUntil === undefined) continue;
      const seq = item.claimSeq ?? 0;
      const list = bySeq.get(seq);
      if (list) list.push(key);
      else bySeq.set(seq, [key]);
    }
    return this.#change([...bySeq].map(([seq, ids]) => ({ op: 'extend', seq, ids, leaseUntil })));
  }

  /** Returns claimed items (by key) to pending. */
  release(keys: readonly string[]): Promise<void> {
    return this.#change(keys.length ? [{ op: 'release', seq: this.#claimSeq, ids: [...keys] }] : []);
  }

  /** Removes processed items (by key) from the queue. */
  ack(keys: readonly string[]): Promise<void> {
    return this.#change(keys.length ? [{ op: 'ack', ids: [...keys] }] : []);
  }

  /** Writes the snapshot and empties the log. */
  compact(): Promise<void> {
    this.#compacting ??= this.#compact();
    return this.#compacting;
  }

  /** Compacts and closes the log, so `pending.json` alone is exact after a clean close. */
  async close(): Promise<void> {
    // No change is made from now on; those already made finish first (appended, or undone), so the
    // snapshot below holds exactly what the disk does.
    this.#closing = true;
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    try {
      await this.compact();
    } finally {
      await this.#log.close();
    }
  }

  #change(records: PendingLogRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    if (this.#closing) return Promise.reject(new IMClientError('CLOSED', 'the pending queue is closed'));
    const change = this.#changeNow(records);
    this.#inflight.add(change);
    void change.catch(() => {}).finally(() => this.#inflight.delete(change));
    return change;
  }

  async #changeNow(records: PendingLogRecord[]): Promise<void> {
    // Applied in memory at once (what is queued and claimed must agree with the actors at every
    // moment); how the items a claim, extension, release or ack touches stood before is kept, to put
    // back if its line fails.
    let before: ItemState[] | undefined;
    for (const r of records) if (r.op !== 'add') before = this.#items.capture(r, before);
    for (const r of records) this.#items.apply(r);
    const undo: Undo = {
      seq: ++this.#changes,
      records,
      before,
      after: before?.map((s) => this.#items.stateOf(s.item)),
      duringCompaction: this.#compacting !== undefined,
    };
    this.#logLines += records.length;
    try {
      await this.#append(records.map((r) => JSON.stringify(r)));
    } catch (err) {
      await this.#undo(undo);
      throw err;
    }
    if (this.#logLines >= COMPACT_MIN_LINES && this.#logLines > this.#items.byKey.size) void this.compact().catch(() => {});
  }

  /**
   * Appends a change's lines in the order the changes were made: at once, or
   * (while a compaction runs: nothing may reach the log it is replacing) held
   * and appended, in order, as soon as it ends, before any later change can.
   */
  #append(lines: string[]): Promise<void> {
    if (this.#compacting) return new Promise<void>((resolve, reject) => this.#held.push({ lines, resolve, reject }));
    if (this.#broken) return Promise.reject(this.#broken);
    return this.#log.append(lines);
  }

  /** Appends the held lines (a compaction that failed left the log in use: they still go to it). */
  #releaseHeld(): void {
    const held = this.#held;
    this.#held = [];
    for (const { lines, resolve, reject } of held) {
      if (this.#broken) reject(this.#broken);
      else this.#log.append(lines).then(resolve, reject);
    }
  }

  /**
   * Puts memory back to what the disk says after a change's line failed: an
   * add that is not on disk must not be handed out, and an ack, claim,
   * extension or release that is not on disk did not happen (an ack tried
   * again then acknowledges it; the message goes back to the end of the queue
   * in memory). The changes of one failed write are undone together, newest
   * first, once all of them have failed (a macrotask later), each field only
   * where nothing has changed it since; callers hear of the failure after.
   */
  #undo(undo: Undo): Promise<void> {
    this.#undos.push(undo);
    this.#undoing ??= new Promise<void>((resolve) =>
      setImmediate(() => {
        const undos = this.#undos.sort((a, b) => b.seq - a.seq);
        this.#undos = [];
        this.#undoing = undefined;
        for (const { records, before, after } of undos) {
          if (before) this.#items.restore(before, after!);
          for (const r of records) if (r.op === 'add' && this.#items.byKey.get(keyOf(r.item)) === r.item) this.#items.delete(keyOf(r.item));
        }
        // A change made while a compaction ran may be in the snapshot it wrote: write it again, as
        // memory now is (which also reopens a log that compaction could not).
        if ((this.#broken || undos.some((u) => u.duringCompaction)) && !this.#closing) void this.compact().catch(() => {});
        resolve();
      }),
    );
    return this.#undoing;
  }

  /**
   * Writes the snapshot, then empties the log. A failure before the log is
   * replaced leaves the old log in use; a failure to reopen it afterwards
   * makes later changes fail rather than go to the replaced file, until a
   * compaction succeeds (memory and disk agree again).
   */
  async #compact(): Promise<void> {
    let replaced = false;
    try {
      await this.#log.flush();
      // A line of that flush may have failed: its change is undone a macrotask later, and the
      // snapshot must not take it in (a rejected ack would be durable).
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.#undoing) await this.#undoing;
      await PendingSnapshot.write(this.#snapshotPath, this.#items.byKey.values());
      // Only now is the log redundant; a crash before this line replays it over the new snapshot harmlessly.
      const old = this.#log;
      await atomicWriteFile(this.#logPath, '');
      replaced = true;
      this.#log = await JsonlWriter.open(this.#logPath);
      this.#broken = undefined;
      this.#logLines = 0;
      await old.close();
    } catch (err) {
      if (replaced) this.#broken = err instanceof Error ? err : new Error(String(err));
      else throw err;
    } finally {
      this.#compacting = undefined;
      this.#releaseHeld();
    }
  }
}

async function load(snapshotPath: string, logPath: string, onWarning?: WarningListener) {
  const items = new Items();
  for (const item of (await PendingSnapshot.read(snapshotPath)) ?? []) items.add(item);
  let logLines = 0;
  let claimSeq = 0;
  for await (const { value } of readJsonl(logPath, PendingLogRecord, { onWarning })) {
    items.apply(value);
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

function keyOf(item: PendingItem): string {
  return pendingKey(item.message.from, item.message.id);
}

/** A change's lines waiting for a compaction to end. */
interface HeldLines {
  lines: string[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A change applied in memory, with what it takes to undo it. */
interface Undo {
  /** Order of the change: undone newest first. */
  seq: number;
  records: PendingLogRecord[];
  before: ItemState[] | undefined;
  after: ItemState[] | undefined;
  /** Made while a compaction ran: its snapshot may hold it. */
  duringCompaction: boolean;
}

/** An item and the fields a change can move. */
interface ItemState {
  item: PendingItem;
  /** Whether it is in the queue (an acknowledged one is not). */
  queued: boolean;
  claimSeq: number | undefined;
  leaseUntil: string | undefined;
  attempts: number;
}

/** The queued items by key, oldest first, with the keys of each message id. */
class Items {
  readonly byKey = new Map<string, PendingItem>();
  /** Message id to its item's key, or to several when senders share the id. */
  readonly #byId = new Map<string, string | string[]>();

  keysOf(id: string): readonly string[] {
    const keys = this.#byId.get(id);
    return keys === undefined ? [] : typeof keys === 'string' ? [keys] : keys;
  }

  add(item: PendingItem): void {
    const key = keyOf(item);
    if (this.byKey.has(key)) return;
    this.byKey.set(key, item);
    const id = item.message.id;
    const keys = this.#byId.get(id);
    this.#byId.set(id, keys === undefined ? key : typeof keys === 'string' ? [keys, key] : [...keys, key]);
  }

  delete(key: string): void {
    const item = this.byKey.get(key);
    if (!item) return;
    this.byKey.delete(key);
    const id = item.message.id;
    const keys = this.#byId.get(id);
    const rest = typeof keys === 'string' ? [] : (keys ?? []).filter((k) => k !== key);
    if (rest.length === 0) this.#byId.delete(id);
    else this.#byId.set(id, rest.length === 1 ? rest[0]! : rest);
  }

  /** How the items a change names stand now (for {@link restore}). */
  capture(record: Exclude<PendingLogRecord, { op: 'add' }>, into?: ItemState[]): ItemState[] {
    const out = into ?? [];
    for (const ref of record.ids) {
      for (const key of this.#resolve(ref)) {
        const item = this.byKey.get(key);
        if (item) out.push(this.stateOf(item));
      }
    }
    return out;
  }

  stateOf(item: PendingItem): ItemState {
    return { item, queued: this.byKey.get(keyOf(item)) === item, claimSeq: item.claimSeq, leaseUntil: item.leaseUntil, attempts: item.attempts };
  }

  /**
   * Puts items back as {@link capture} found them (an acknowledged one back
   * in the queue, at its end), field by field, each only if it still has the
   * value the change gave it (`after`, taken right after the change): a field
   * another change has set since keeps its newer value.
   */
  restore(before: readonly ItemState[], after: readonly ItemState[]): void {
    for (let i = before.length - 1; i >= 0; i--) {
      const { item, queued, claimSeq, leaseUntil, attempts } = before[i]!;
      const then = after[i]!;
      if (item.attempts === then.attempts) item.attempts = attempts;
      if (item.claimSeq === then.claimSeq) {
        if (claimSeq === undefined) delete item.claimSeq;
        else item.claimSeq = claimSeq;
      }
      if (item.leaseUntil === then.leaseUntil) {
        if (leaseUntil === undefined) delete item.leaseUntil;
        else item.leaseUntil = leaseUntil;
      }
      if (queued && !then.queued && this.byKey.get(keyOf(item)) === undefined) this.add(item);
    }
  }

  /** The keys a log line names: a key as it is, a bare message id (older lines) as its items' keys. */
  #resolve(ref: string): readonly string[] {
    return ref.includes('/') ? [ref] : this.keysOf(ref);
  }

  apply(record: PendingLogRecord): void {
    switch (record.op) {
      case 'add':
        this.add(record.item);
        return;
      case 'claim':
        for (const ref of record.ids) {
          for (const key of this.#resolve(ref)) {
            const item = this.byKey.get(key);
            if (item && (item.claimSeq ?? 0) < record.seq) {
              item.claimSeq = record.seq;
              item.leaseUntil = record.leaseUntil;
              item.attempts++;
            }
          }
        }
        return;
      case 'extend':
        for (const ref of record.ids) {
          for (const key of this.#resolve(ref)) {
            const item = this.byKey.get(key);
            // Only while the claim it extends still holds the item (not released, not claimed again).
            if (item && item.leaseUntil !== undefined && (item.claimSeq ?? 0) === record.seq) item.leaseUntil = record.leaseUntil;
          }
        }
        return;
      case 'release':
        for (const ref of record.ids) {
          for (const key of this.#resolve(ref)) {
            const item = this.byKey.get(key);
            if (item && (item.claimSeq ?? 0) <= record.seq) delete item.leaseUntil;
          }
        }
        return;
      case 'ack':
        for (const ref of record.ids) for (const key of [...this.#resolve(ref)]) this.delete(key);
        return;
    }
  }
}
