// Node's own: a test's fake timers (which replace the global one) do not hold undos back.
import { setImmediate } from 'node:timers';
import { IMClientError, StorageCorruptError } from '../../errors.js';
import { atomicWriteFile, replacedDespite } from '../../fs/atomicWriteFile.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { readJsonl, readLines } from '../../fs/readJsonl.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { PendingSnapshot } from './PendingSnapshot.js';
import { PendingLogRecord, pendingKey, type MessageRecord, type PendingItem } from './records.js';

/** Fold the log into the snapshot once it has this many lines and more lines than the queue has items. */
const COMPACT_MIN_LINES = 4096;

/** Where an item's message is: in memory, or only in one of the two files (spilled). */
const IN_MEMORY = 0;
const SNAPSHOT = 1;
const LOG = 2;
type Place = typeof IN_MEMORY | typeof SNAPSHOT | typeof LOG;
/** The file a spilled item's message is in. */
type File = typeof SNAPSHOT | typeof LOG;

/** What a pending item does not change: its message and when it was queued. */
export interface PendingBody {
  message: MessageRecord;
  enqueuedAt: string;
}

/**
 * A pending item as the store holds it. Its claim state is always in memory;
 * its message (and `enqueuedAt`) only while `place` is in memory: a long
 * queue keeps the rest in its files ({@link PendingQueueStore.load}).
 */
export interface QueueItem {
  message: MessageRecord | undefined;
  enqueuedAt: string | undefined;
  attempts: number;
  claimSeq: number | undefined;
  leaseUntil: string | undefined;
  place: Place;
}

/** Options of {@link PendingQueueStore.open}. */
export interface PendingQueueStoreOptions {
  onWarning?: WarningListener | undefined;
  /** Most items whose messages stay in memory; the rest wait in the files. @default 10000 */
  maxInMemory?: number | undefined;
}

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
 *
 * A long queue is **spilled**: beyond `maxInMemory` items, an item keeps its
 * claim state in memory and its message only in the files (the snapshot's
 * line, or the log's `add` line), read back in queue order when it is
 * claimed ({@link load}) or looked at ({@link peek}). Spilled items are the
 * queue's tail, so their lines come in file order (the snapshot's, then the
 * log's): a read-back goes on from where the last one stopped. Compaction
 * copies their lines into the new snapshot; read-backs and compactions take
 * turns, so a read-back never meets a file being replaced.
 */
export class PendingQueueStore {
  readonly #snapshotPath: string;
  readonly #logPath: string;
  readonly #items: Items;
  readonly #max: number;
  /** Per place, the byte offset at or before the first spilled item's line. */
  readonly #from: [unused: number, snapshot: number, log: number];
  #log: JsonlWriter;
  #logLines: number;
  /** Number of the latest claim. */
  #claimSeq: number;
  #compacting: Promise<void> | undefined;
  /** Read-backs and compactions, one at a time. */
  #io: Promise<void> = Promise.resolve();
  /**
   * Per place, how often its read-back start was moved back (a spill into
   * the log, an item put back by an undo, a compaction that failed): a
   * read-back during which that happened must not move the start forward.
   */
  readonly #rewinds: [unused: number, snapshot: number, log: number] = [0, 0, 0];
  /** Spilled items removed by changes made during a compaction, until their lines are durable (or undone). */
  readonly #removing = new Map<QueueItem, string>();
  /**
   * Items whose failed acknowledgement was undone while an add of the same
   * key was still being written: put back if that add fails too.
   */
  readonly #displaced = new Map<string, QueueItem>();
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

  private constructor(snapshotPath: string, logPath: string, log: JsonlWriter, loaded: Loaded, max: number) {
    this.#snapshotPath = snapshotPath;
    this.#logPath = logPath;
    this.#log = log;
    this.#items = loaded.items;
    this.#from = loaded.from;
    this.#logLines = loaded.logLines;
    this.#max = max;
    this.#claimSeq = loaded.claimSeq;
    for (const item of this.#items.byKey.values()) this.#claimSeq = Math.max(this.#claimSeq, item.claimSeq ?? 0);
  }

  /**
   * What the files say the queue holds, oldest first, without changing them
   * (the snapshot with the log replayed over it).
   */
  static async read(snapshotPath: string, logPath: string, onWarning?: WarningListener): Promise<PendingItem[]> {
    const { items } = await load(snapshotPath, logPath, Infinity, onWarning);
    return Array.from(items.byKey.values(), (item) => toPendingItem(item, item as PendingBody));
  }

  /** Loads the snapshot, replays the log over it and compacts. */
  static async open(snapshotPath: string, logPath: string, options: PendingQueueStoreOptions = {}): Promise<PendingQueueStore> {
    const max = options.maxInMemory ?? 10_000;
    const loaded = await load(snapshotPath, logPath, max, options.onWarning);
    const store = new PendingQueueStore(snapshotPath, logPath, await JsonlWriter.open(logPath), loaded, max);
    // Compacting also creates pending.json on first open, so the seed's layout is complete from
    // the start, and puts a snapshot in another layout into this one (one item a line).
    if (loaded.logLines > 0 || loaded.layout !== 'lines') await store.compact();
    return store;
  }

  /** Every item, oldest first (a spilled one without its message). */
  items(): IterableIterator<QueueItem> {
    return this.#items.byKey.values();
  }

  /** Every item with its key, oldest first. */
  entries(): IterableIterator<[key: string, item: QueueItem]> {
    return this.#items.byKey.entries();
  }

  /** The item with this key (`pendingKey(from, id)`). */
  get(key: string): QueueItem | undefined {
    return this.#items.byKey.get(key);
  }

  /** How many items have their message in memory (the others are spilled). */
  get inMemory(): number {
    return this.#items.loaded;
  }

  /**
   * The messages of these items (by key), reading spilled ones back into
   * memory, with those after them up to `maxInMemory` in all: what a claim
   * takes next. An item no longer queued is left out. Rejects if a read
   * fails or a spilled message is in neither file (`STORAGE_CORRUPT`).
   */
  load(keys: readonly string[]): Promise<Map<string, PendingBody>> {
    return this.#bodies(keys, true);
  }

  /** The messages of these items (by key), as {@link load}, leaving spilled ones spilled: a look, not a claim. */
  peek(keys: readonly string[]): Promise<Map<string, PendingBody>> {
    return this.#bodies(keys, false);
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
    const seen = new Set<string>();
    const records: PendingLogRecord[] = [];
    let others: Promise<void>[] | undefined;
    for (const item of items) {
      const key = keyOf(item);
      const writing = this.#adding.get(key);
      if (writing) (others ??= []).push(writing);
      // A key twice in one call is one item, written once.
      else if (!this.#items.byKey.has(key) && !seen.has(key)) {
        seen.add(key);
        fresh.push(key);
        records.push({ op: 'add', item });
      }
    }
    let change = this.#change(records);
    if (fresh.length > 0) {
      // Forgotten before the caller hears how it went: an add it retries at once is its own.
      change = change.finally(() => {
        for (const key of fresh) {
          if (this.#adding.get(key) !== change) continue;
          this.#adding.delete(key);
          // Durable (or undone, which already put it back): an item it displaced stays out.
          this.#displaced.delete(key);
        }
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
    this.#compacting ??= this.#exclusive(() => this.#compact());
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
    let added: Array<[string, QueueItem]> | undefined;
    for (const r of records) if (r.op !== 'add') before = this.#items.capture(r, before);
    for (const r of records) {
      const item = this.#items.apply(r);
      if (item) (added ??= []).push(item);
    }
    const undo: Undo = {
      seq: ++this.#changes,
      added,
      before,
      after: before?.map((s) => this.#items.stateOf(s.key, s.item)),
      duringCompaction: this.#compacting !== undefined,
    };
    // A spilled item acknowledged while a compaction runs keeps its line in the new snapshot until the
    // acknowledgement is durable: undone, the item comes back, and its message must be somewhere.
    let removing: QueueItem[] | undefined;
    if (undo.duringCompaction) {
      for (const { key, item, queued } of before ?? []) {
        if (queued && item.place !== IN_MEMORY && this.#items.byKey.get(key) !== item && !this.#removing.has(item)) {
          this.#removing.set(item, key);
          (removing ??= []).push(item);
        }
      }
    }
    this.#logLines += records.length;
    let offset: number;
    try {
      offset = await this.#append(records.map((r) => JSON.stringify(r)));
    } catch (err) {
      await this.#undo(undo);
      throw err;
    } finally {
      for (const item of removing ?? []) this.#removing.delete(item);
    }
    if (added) this.#spillAdded(added, offset);
    if (this.#logLines >= COMPACT_MIN_LINES && this.#logLines > this.#items.byKey.size) void this.compact().catch(() => {});
  }

  /**
   * Leaves the messages of items just added (their `add` lines durable from
   * byte `offset` on) only in the log, once the queue holds `maxInMemory`
   * messages in memory or already has spilled ones (spilled items stay the
   * queue's tail). One claimed since it was added is about to be handed out:
   * it stays.
   */
  #spillAdded(added: ReadonlyArray<[string, QueueItem]>, offset: number): void {
    const stays = (key: string, item: QueueItem) => this.#items.byKey.get(key) !== item || item.place !== IN_MEMORY || item.leaseUntil !== undefined;
    // Messages in memory before these: the first of these fill up to the bound, the rest spill.
    let kept = this.#items.loaded;
    for (const [key, item] of added) if (!stays(key, item)) kept--;
    for (const [key, item] of added) {
      if (stays(key, item)) continue;
      if (kept < this.#max && this.#items.spilled === 0) {
        kept++;
        continue;
      }
      // At or before its line (a read-back under way may have passed the line before it spilled).
      this.#rewind(LOG, this.#items.spilledIn[LOG] === 0 ? offset : Math.min(this.#from[LOG], offset));
      this.#items.spill(item, LOG);
    }
  }

  /** Runs read-backs and compactions one at a time, in the order asked. */
  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#io.then(task);
    this.#io = run.then(
      () => {},
      () => {},
    );
    return run;
  }

  #pathOf(place: File): string {
    return place === SNAPSHOT ? this.#snapshotPath : this.#logPath;
  }

  /** A spilled message found on neither file's line (an edit behind the client's back). */
  #missing(key: string): StorageCorruptError {
    return new StorageCorruptError(this.#snapshotPath, `the message of pending item ${key} is in neither ${this.#snapshotPath} nor ${this.#logPath}`);
  }

  /** Moves a file's read-back start back to `offset` (at or before a line that is spilled now). */
  #rewind(place: File, offset: number): void {
    this.#from[place] = offset;
    this.#rewinds[place]++;
  }

  #bodies(keys: readonly string[], keep: boolean): Promise<Map<string, PendingBody>> {
    const found = new Map<string, PendingBody>();
    const wanted = new Set<string>();
    for (const key of keys) {
      const item = this.#items.byKey.get(key);
      if (item === undefined) continue;
      if (item.place === IN_MEMORY) found.set(key, bodyIn(item));
      else wanted.add(key);
    }
    if (wanted.size === 0) return Promise.resolve(found);
    return this.#exclusive(() => this.#readBack(wanted, keep, found));
  }

  /**
   * Reads the spilled items' lines from where the last read-back stopped:
   * adds the messages of those `wanted` to `found`, and, to `keep`, takes
   * every spilled message it passes back into memory, until the wanted are
   * found and the queue has `maxInMemory` messages in memory (or the files
   * end). A look (`keep` false) changes nothing.
   */
  async #readBack(wanted: Set<string>, keep: boolean, found: Map<string, PendingBody>): Promise<Map<string, PendingBody>> {
    /** Takes out of `wanted` those taken back or gone (acknowledged) since they were asked for. */
    const settle = () => {
      for (const key of wanted) {
        const item = this.#items.byKey.get(key);
        if (item?.place === IN_MEMORY) found.set(key, bodyIn(item));
        if (item?.place !== SNAPSHOT && item?.place !== LOG) wanted.delete(key);
      }
    };
    const done = () => wanted.size === 0 && (!keep || this.#items.loaded >= this.#max || this.#items.spilled === 0);
    for (;;) {
      settle();
      const rewinds = [...this.#rewinds];
      read: for (const place of [SNAPSHOT, LOG] as const) {
        if (done()) break;
        if (this.#items.spilledIn[place] === 0) continue;
        file: for await (const lines of readLines(this.#pathOf(place), this.#from[place])) {
          for (const raw of lines) {
            // A line still being appended is no spilled item's: those were durable before they spilled.
            if (!raw.terminated) break file;
            const line = itemLine(raw.text, place);
            const item = line && this.#items.byKey.get(line.key);
            if (line && item !== undefined && item.place === place) {
              const body = bodyOf(line.json);
              if (wanted.delete(line.key)) found.set(line.key, body);
              if (keep) this.#items.unspill(item, body);
            }
            // Every spilled line before this one is back in memory: the next read-back starts after
            // it (unless the start was moved back meanwhile: a line behind this one is spilled now).
            if (keep && this.#rewinds[place] === rewinds[place]) this.#from[place] = raw.end;
            if (done()) break read;
            if (this.#items.spilledIn[place] === 0) break file;
          }
        }
      }
      settle();
      // One put back behind this pass (an acknowledgement undone) is read in another pass.
      if (wanted.size === 0 || (this.#rewinds[SNAPSHOT] === rewinds[SNAPSHOT] && this.#rewinds[LOG] === rewinds[LOG])) break;
    }
    if (wanted.size > 0) {
      const [key] = wanted;
      throw this.#missing(key!);
    }
    return found;
  }

  /**
   * Appends a change's lines in the order the changes were made: at once, or
   * (while a compaction runs: nothing may reach the log it is replacing) held
   * and appended, in order, as soon as it ends, before any later change can.
   */
  #append(lines: string[]): Promise<number> {
    if (this.#compacting) return new Promise<number>((resolve, reject) => this.#held.push({ lines, resolve, reject }));
    if (this.#broken) return Promise.reject(this.#broken);
    return this.#appendNow(lines);
  }

  /** Appends lines to the log; resolves once they are durable with an offset at or before the first. */
  #appendNow(lines: string[]): Promise<number> {
    const offset = this.#log.settledLength;
    return this.#log.append(lines).then(() => offset);
  }

  /** Appends the held lines (a compaction that failed left the log in use: they still go to it). */
  #releaseHeld(): void {
    const held = this.#held;
    this.#held = [];
    for (const { lines, resolve, reject } of held) {
      if (this.#broken) reject(this.#broken);
      else this.#appendNow(lines).then(resolve, reject);
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
        for (const { added, before, after } of undos) {
          if (before) {
            const { back, blocked } = this.#items.restore(before, after!);
            // A spilled item brought back: a read-back may have passed its line since.
            for (const item of back) if (item.place !== IN_MEMORY) this.#rewind(item.place, 0);
            // Its key queued again by an add still being written: back in its place if that add fails.
            for (const [key, item] of blocked) if (this.#adding.has(key)) this.#displaced.set(key, item);
          }
          for (const [key, item] of added ?? []) {
            if (this.#items.byKey.get(key) !== item) continue;
            this.#items.delete(key);
            const displaced = this.#displaced.get(key);
            if (displaced === undefined) continue;
            this.#displaced.delete(key);
            this.#items.add(key, displaced);
            if (displaced.place !== IN_MEMORY) this.#rewind(displaced.place, 0);
          }
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
    let replacingLog = false;
    let replaced = false;
    try {
      await this.#log.flush();
      // A line of that flush may have failed: its change is undone a macrotask later, and the
      // snapshot must not take it in (a rejected ack would be durable).
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.#undoing) await this.#undoing;
      // One moment's queue: items change in place while the file is written. It is the queue the
      // disk will hold once the changes waiting for this compaction are appended to the new log: a
      // spilled item they acknowledge is still in it (their lines take it out on replay).
      const rows = Array.from(this.#items.byKey, ([key, item]): Row => ({ key, item, copy: { ...item } }));
      /** Those whose key was queued again meanwhile: that item's line holds the same message. */
      const requeued: QueueItem[] = [];
      /** Whether a read-back may have gone past the lines of some rows (acknowledged since): the files are read from the start. */
      let fromStart = false;
      for (const [item, key] of this.#removing) {
        if (this.#items.byKey.has(key)) requeued.push(item);
        else {
          rows.push({ key, item, copy: { ...item } });
          fromStart = true;
        }
      }
      // Put back if the add that displaced them fails: their key's line is then that add's.
      for (const [key, item] of this.#displaced) if (this.#items.byKey.has(key)) requeued.push(item);
      const offsets: number[] = [];
      try {
        await PendingSnapshot.write(this.#snapshotPath, this.#withMessages(rows, fromStart), (offset) => offsets.push(offset));
      } catch (err) {
        // The new snapshot may have replaced the old one after all (the directory's sync failed):
        // either way every spilled line of the snapshot is in the one there now, at offsets unknown.
        this.#rewind(SNAPSHOT, 0);
        throw err;
      }
      this.#moved(rows, offsets);
      for (const item of requeued) if (item.place !== IN_MEMORY) item.place = SNAPSHOT;
      // Only now is the log redundant; a crash before this line replays it over the new snapshot harmlessly.
      const old = this.#log;
      replacingLog = true;
      await atomicWriteFile(this.#logPath, '');
      replaced = true;
      this.#log = await JsonlWriter.open(this.#logPath);
      this.#broken = undefined;
      this.#logLines = 0;
      await old.close();
    } catch (err) {
      // Replaced, even if the call failed after its rename: changes must not go to the old log's inode.
      if (replaced || (replacingLog && replacedDespite(err))) this.#broken = err instanceof Error ? err : new Error(String(err));
      else throw err;
    } finally {
      this.#compacting = undefined;
      this.#releaseHeld();
    }
  }

  /**
   * The rows as snapshot items, in order, a spilled one's message copied from
   * its line in the old files (read on, in file order, as the rows reach them).
   */
  async *#withMessages(rows: readonly Row[], fromStart: boolean): AsyncGenerator<PendingItem | string> {
    let lines: AsyncGenerator<ItemLine> | undefined;
    /** Spilled lines read before their row came (none while file order is queue order). */
    const ahead = new Map<string, string>();
    try {
      for (const { key, copy } of rows) {
        if (copy.place === IN_MEMORY) {
          yield toPendingItem(copy, copy as PendingBody);
          continue;
        }
        let json = ahead.get(key);
        if (json === undefined) {
          lines ??= this.#spilledLines(rows, fromStart);
          for (;;) {
            const next = await lines.next();
            if (next.done) throw this.#missing(key);
            if (next.value.key === key) {
              json = next.value.json;
              break;
            }
            // The first line of a key is the one a read-back finds (an add repeating it changes nothing).
            if (!ahead.has(next.value.key)) ahead.set(next.value.key, next.value.json);
          }
        } else ahead.delete(key);
        // Copied as it is when its claim state is still the line's (almost always: it waited untouched).
        yield hasClaimState(json, copy) ? json : toPendingItem(copy, bodyOf(json));
      }
    } finally {
      await lines?.return(undefined);
    }
  }

  /** The lines of the rows spilled, in file order: the snapshot's, then the log's (each from its read-back start, or from its first line). */
  async *#spilledLines(rows: readonly Row[], fromStart: boolean): AsyncGenerator<ItemLine> {
    const spilled = new Map<string, File>();
    for (const { key, copy } of rows) if (copy.place !== IN_MEMORY) spilled.set(key, copy.place);
    for (const place of [SNAPSHOT, LOG] as const) {
      for await (const lines of readLines(this.#pathOf(place), fromStart ? 0 : this.#from[place])) {
        for (const raw of lines) {
          const line = itemLine(raw.text, place);
          if (line !== undefined && spilled.get(line.key) === place) yield line;
        }
      }
    }
  }

  /**
   * After the new snapshot replaced the old one: spilled messages are on its
   * lines now, and the messages in memory beyond `maxInMemory` (a snapshot
   * in another layout was read whole) are left there too. Acknowledged
   * items (gone from memory) and claimed ones are left as they are.
   */
  #moved(rows: readonly Row[], offsets: readonly number[]): void {
    let from = Infinity;
    /** Messages kept in memory so far, oldest first. */
    let kept = 0;
    for (let i = 0; i < rows.length; i++) {
      const { key, item } = rows[i]!;
      if (this.#items.byKey.get(key) !== item) {
        // Acknowledged, durably or not yet: should an undo bring it back, its line is this one.
        if (item.place !== IN_MEMORY) item.place = SNAPSHOT;
        continue;
      }
      if (item.place !== IN_MEMORY) {
        this.#items.move(item, SNAPSHOT);
        from = Math.min(from, offsets[i]!);
      } else if (kept < this.#max || item.leaseUntil !== undefined) {
        kept++;
      } else {
        this.#items.spill(item, SNAPSHOT);
        from = Math.min(from, offsets[i]!);
      }
    }
    this.#rewind(SNAPSHOT, from === Infinity ? 0 : from);
    this.#rewind(LOG, 0);
  }
}

/** What {@link load} found in the files. */
interface Loaded {
  items: Items;
  from: [unused: number, snapshot: number, log: number];
  logLines: number;
  claimSeq: number;
  layout: 'lines' | 'whole' | 'missing';
}

/**
 * The snapshot with the log replayed over it; beyond `max` items, messages
 * are left in the files (spilled), each file's read-back starting at the
 * first spilled line.
 */
async function load(snapshotPath: string, logPath: string, max: number, onWarning?: WarningListener): Promise<Loaded> {
  let items = new Items();
  const from: Loaded['from'] = [0, 0, 0];
  const spillIfOver = (item: QueueItem, place: File, offset: number) => {
    if (offset < 0 || item.leaseUntil !== undefined || (items.loaded <= max && items.spilled === 0)) return;
    if (items.spilledIn[place] === 0) from[place] = offset;
    items.spill(item, place);
  };
  const layout = await PendingSnapshot.each(
    snapshotPath,
    (pending, offset) => {
      const added = items.apply({ op: 'add', item: pending });
      if (added) spillIfOver(added[1], SNAPSHOT, offset);
    },
    () => (items = new Items()),
  );
  let logLines = 0;
  let claimSeq = 0;
  for await (const { value, offset } of readJsonl(logPath, PendingLogRecord, { onWarning })) {
    const added = items.apply(value);
    if (added) spillIfOver(added[1], LOG, offset);
    if (value.op === 'claim') claimSeq = Math.max(claimSeq, value.seq);
    logLines++;
  }
  return { items, from, logLines, claimSeq, layout };
}

/** How a log line adding an item begins (`JSON.stringify({ op: 'add', item })`); the item's JSON follows. */
const ADD_PREFIX = '{"op":"add","item":';
/** How an item's JSON begins as this store writes it: the message first, its type, then its id. */
const ITEM_PREFIX = '{"message":{"type":"message","id":"';
/** Where the sender follows in it (`conversationId` and `direction` come between: no quotes in their values). */
const FROM = ',"from":"';
const BETWEEN_ID_AND_FROM = /^","conversationId":"[^"\\]*","direction":"(?:in|out)"$/;

/** An item's line in one of the files: its key, and the item's JSON as written there. */
interface ItemLine {
  key: string;
  json: string;
}

/**
 * The item on a line of the snapshot (an item, a comma after it) or an
 * `add` line of the log, or `undefined` for any other line. The files were
 * validated when opened; a line as this store writes it gives its key
 * without being parsed (ids and agent ids hold no quote, and a quote inside
 * a string is escaped), any other (a hand edit) is parsed.
 */
function itemLine(raw: string, place: File): ItemLine | undefined {
  // Spaces and line endings around an item are allowed, as when the file was opened.
  const text = raw.trim();
  let json: string;
  if (place === LOG) {
    if (!text.startsWith(ADD_PREFIX) || !text.endsWith('}')) {
      // An `add` line in another layout (a hand edit): parsed, and its item written as this store would.
      try {
        const record = JSON.parse(text) as { op?: unknown; item?: PendingItem };
        return record.op === 'add' && record.item ? { key: keyOf(record.item), json: JSON.stringify(record.item) } : undefined;
      } catch {
        return undefined;
      }
    }
    json = text.slice(ADD_PREFIX.length, -1);
  } else {
    if (!text.startsWith('{')) return undefined;
    json = text.endsWith(',') ? text.slice(0, -1) : text;
  }
  if (json.startsWith(ITEM_PREFIX)) {
    const idEnd = json.indexOf('"', ITEM_PREFIX.length);
    const from = idEnd === -1 ? -1 : json.indexOf(FROM, idEnd);
    const fromEnd = from === -1 ? -1 : json.indexOf('"', from + FROM.length);
    // Only the two fields this store writes between them: a line laid out otherwise is parsed.
    if (fromEnd !== -1 && BETWEEN_ID_AND_FROM.test(json.slice(idEnd, from))) return { key: pendingKey(json.slice(from + FROM.length, fromEnd), json.slice(ITEM_PREFIX.length, idEnd)), json };
  }
  try {
    const item = JSON.parse(json) as PendingItem;
    return { key: keyOf(item), json };
  } catch {
    return undefined;
  }
}

/**
 * The message of an item in memory, copied: the item may be spilled (its
 * message dropped) before the caller uses it.
 */
function bodyIn(item: QueueItem): PendingBody {
  return { message: item.message!, enqueuedAt: item.enqueuedAt! };
}

/** The message of an item's JSON (from {@link itemLine}). */
function bodyOf(json: string): PendingBody {
  const { message, enqueuedAt } = JSON.parse(json) as PendingItem;
  return { message, enqueuedAt };
}

/** How an item's JSON written by this store ends: its message, `enqueuedAt`, then its claim state. */
const CANONICAL_END = /\},"enqueuedAt":"[^"]*"$/;

/**
 * Whether an item's JSON (from {@link itemLine}) is as this store writes it
 * with this claim state: the message first, then `enqueuedAt`, `attempts`,
 * and `claimSeq` and `leaseUntil` when set, nothing else.
 */
function hasClaimState(json: string, item: Pick<QueueItem, 'attempts' | 'claimSeq' | 'leaseUntil'>): boolean {
  const claimSeq = item.claimSeq === undefined ? '' : `,"claimSeq":${item.claimSeq}`;
  const leaseUntil = item.leaseUntil === undefined ? '' : `,"leaseUntil":"${item.leaseUntil}"`;
  const tail = `,"attempts":${item.attempts}${claimSeq}${leaseUntil}}`;
  return json.startsWith(ITEM_PREFIX) && json.endsWith(tail) && CANONICAL_END.test(json.slice(Math.max(0, json.length - tail.length - 64), json.length - tail.length));
}

function keyOf(item: PendingItem): string {
  return pendingKey(item.message.from, item.message.id);
}

/** The message id in a key (`{from}/{id}`: neither part contains `/`). */
function idOf(key: string): string {
  return key.slice(key.indexOf('/') + 1);
}

/** A pending item as the files hold it: claim state from `item`, message from `body`. */
function toPendingItem(item: Pick<QueueItem, 'attempts' | 'claimSeq' | 'leaseUntil'>, body: PendingBody): PendingItem {
  const out: PendingItem = { message: body.message, enqueuedAt: body.enqueuedAt, attempts: item.attempts };
  if (item.claimSeq !== undefined) out.claimSeq = item.claimSeq;
  if (item.leaseUntil !== undefined) out.leaseUntil = item.leaseUntil;
  return out;
}

/** A change's lines waiting for a compaction to end. */
interface HeldLines {
  lines: string[];
  resolve: (offset: number) => void;
  reject: (err: unknown) => void;
}

/** An item as compaction found it (`copy`), and the item itself. */
interface Row {
  key: string;
  item: QueueItem;
  copy: QueueItem;
}

/** A change applied in memory, with what it takes to undo it. */
interface Undo {
  /** Order of the change: undone newest first. */
  seq: number;
  /** The items its adds put in the queue. */
  added: Array<[string, QueueItem]> | undefined;
  before: ItemState[] | undefined;
  after: ItemState[] | undefined;
  /** Made while a compaction ran: its snapshot may hold it. */
  duringCompaction: boolean;
}

/** An item and the fields a change can move. */
interface ItemState {
  key: string;
  item: QueueItem;
  /** Whether it is in the queue (an acknowledged one is not). */
  queued: boolean;
  claimSeq: number | undefined;
  leaseUntil: string | undefined;
  attempts: number;
}

/**
 * The queued items by key, oldest first, with the keys of each message id,
 * and how many have their messages in memory or only in each file.
 */
class Items {
  readonly byKey = new Map<string, QueueItem>();
  /** Message id to its item's key, or to several when senders share the id. */
  readonly #byId = new Map<string, string | string[]>();
  /** Items whose message is in memory. */
  loaded = 0;
  /** Items whose message is only in a file, by place (`SNAPSHOT`, `LOG`). */
  readonly spilledIn: [unused: number, snapshot: number, log: number] = [0, 0, 0];

  get spilled(): number {
    return this.spilledIn[SNAPSHOT] + this.spilledIn[LOG];
  }

  keysOf(id: string): readonly string[] {
    const keys = this.#byId.get(id);
    return keys === undefined ? [] : typeof keys === 'string' ? [keys] : keys;
  }

  /** Adds an item under `key` unless one is there; false if one was. */
  add(key: string, item: QueueItem): boolean {
    if (this.byKey.has(key)) return false;
    this.byKey.set(key, item);
    this.#count(item.place, 1);
    const id = idOf(key);
    const keys = this.#byId.get(id);
    this.#byId.set(id, keys === undefined ? key : typeof keys === 'string' ? [keys, key] : [...keys, key]);
    return true;
  }

  delete(key: string): void {
    const item = this.byKey.get(key);
    if (!item) return;
    this.byKey.delete(key);
    this.#count(item.place, -1);
    const id = idOf(key);
    const keys = this.#byId.get(id);
    const rest = typeof keys === 'string' ? [] : (keys ?? []).filter((k) => k !== key);
    if (rest.length === 0) this.#byId.delete(id);
    else this.#byId.set(id, rest.length === 1 ? rest[0]! : rest);
  }

  /** Leaves an item's message only in a file. */
  spill(item: QueueItem, place: File): void {
    this.#count(item.place, -1);
    item.message = undefined;
    item.enqueuedAt = undefined;
    item.place = place;
    this.#count(place, 1);
  }

  /** Takes a spilled item's message back into memory. */
  unspill(item: QueueItem, body: PendingBody): void {
    this.#count(item.place, -1);
    item.message = body.message;
    item.enqueuedAt = body.enqueuedAt;
    item.place = IN_MEMORY;
    this.#count(IN_MEMORY, 1);
  }

  /** Records that a spilled item's message is now in another file. */
  move(item: QueueItem, place: File): void {
    this.#count(item.place, -1);
    item.place = place;
    this.#count(place, 1);
  }

  #count(place: Place, by: number): void {
    if (place === IN_MEMORY) this.loaded += by;
    else this.spilledIn[place] += by;
  }

  /** How the items a change names stand now (for {@link restore}). */
  capture(record: Exclude<PendingLogRecord, { op: 'add' }>, into?: ItemState[]): ItemState[] {
    const out = into ?? [];
    for (const ref of record.ids) {
      for (const key of this.#resolve(ref)) {
        const item = this.byKey.get(key);
        if (item) out.push(this.stateOf(key, item));
      }
    }
    return out;
  }

  stateOf(key: string, item: QueueItem): ItemState {
    return { key, item, queued: this.byKey.get(key) === item, claimSeq: item.claimSeq, leaseUntil: item.leaseUntil, attempts: item.attempts };
  }

  /**
   * Puts items back as {@link capture} found them (an acknowledged one back
   * in the queue, at its end), field by field, each only if it still has the
   * value the change gave it (`after`, taken right after the change): a field
   * another change has set since keeps its newer value. Returns the items it
   * put back, and those it could not because their key is queued again.
   */
  restore(before: readonly ItemState[], after: readonly ItemState[]): { back: QueueItem[]; blocked: Array<[string, QueueItem]> } {
    const back: QueueItem[] = [];
    const blocked: Array<[string, QueueItem]> = [];
    for (let i = before.length - 1; i >= 0; i--) {
      const { key, item, queued, claimSeq, leaseUntil, attempts } = before[i]!;
      const then = after[i]!;
      if (item.attempts === then.attempts) item.attempts = attempts;
      if (item.claimSeq === then.claimSeq) item.claimSeq = claimSeq;
      if (item.leaseUntil === then.leaseUntil) item.leaseUntil = leaseUntil;
      if (!queued || then.queued) continue;
      if (this.byKey.get(key) === undefined) {
        this.add(key, item);
        back.push(item);
      } else if (this.byKey.get(key) !== item) blocked.push([key, item]);
    }
    return { back, blocked };
  }

  /** The keys a log line names: a key as it is, a bare message id (older lines) as its items' keys. */
  #resolve(ref: string): readonly string[] {
    return ref.includes('/') ? [ref] : this.keysOf(ref);
  }

  /** Applies a change; an `add` that puts a new item in the queue returns it with its key. */
  apply(record: PendingLogRecord): [string, QueueItem] | undefined {
    switch (record.op) {
      case 'add': {
        const { message, enqueuedAt, attempts, claimSeq, leaseUntil } = record.item;
        const key = keyOf(record.item);
        const item: QueueItem = { message, enqueuedAt, attempts, claimSeq, leaseUntil, place: IN_MEMORY };
        return this.add(key, item) ? [key, item] : undefined;
      }
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
        return undefined;
      case 'extend':
        for (const ref of record.ids) {
          for (const key of this.#resolve(ref)) {
            const item = this.byKey.get(key);
            // Only while the claim it extends still holds the item (not released, not claimed again).
            if (item && item.leaseUntil !== undefined && (item.claimSeq ?? 0) === record.seq) item.leaseUntil = record.leaseUntil;
          }
        }
        return undefined;
      case 'release':
        for (const ref of record.ids) {
          for (const key of this.#resolve(ref)) {
            const item = this.byKey.get(key);
            if (item && (item.claimSeq ?? 0) <= record.seq) item.leaseUntil = undefined;
          }
        }
        return undefined;
      case 'ack':
        for (const ref of record.ids) for (const key of [...this.#resolve(ref)]) this.delete(key);
        return undefined;
    }
  }
}
