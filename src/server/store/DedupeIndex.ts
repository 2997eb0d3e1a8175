import { z } from 'zod';
import { storageIoError } from '../../errors.js';
import { atomicWriteFile } from '../../fs/atomicWriteFile.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { readJsonl } from '../../fs/readJsonl.js';
import type { WarningListener } from '../../fs/StorageWarning.js';
import { quote } from '../../util/jsonText.js';
import type { AcceptedMessage } from './InboxStore.js';

/** A line of `dedupe.jsonl`. */
const DedupeRecord = z.object({
  from: z.string(),
  id: z.string(),
  to: z.string(),
  seq: z.int().positive(),
  at: z.string(),
  digest: z.string(),
});
type DedupeRecord = z.infer<typeof DedupeRecord>;

interface Remembered extends AcceptedMessage {
  /** Epoch milliseconds after which the entry is forgotten. */
  expires: number;
  /** Whether `dedupe.jsonl` holds it (its segment was trimmed). Always present: one object shape for every entry. */
  inFile: boolean;
}

/** Entries as sender, id and entry, three slots each (no array per entry). */
type Filed = Array<string | Remembered>;

/** Fewest lines in `dedupe.jsonl` before it is checked for rewriting. */
const COMPACT_MIN_LINES = 4096;

/**
 * Remembers accepted messages by (sender, id) so a resend gets the same ack
 * instead of a second delivery. Entries live `windowMs`; at most
 * `maxEntries` are kept, and always the most recent `maxEntries / 2`: they
 * are kept in two generations of plain maps, and when the newer one holds
 * half of `maxEntries` the older one is forgotten whole (so is an older
 * generation whose entries have all expired). A lookup or an insertion is a
 * plain `Map` operation or two, where an exactly ordered map cost an array
 * slot and periodic compaction per message on the server's hottest path.
 * While a message sits in an inbox segment the segment itself remembers it;
 * when a segment is trimmed, the entries still inside the window move to
 * `dedupe.jsonl`.
 */
export class DedupeIndex {
  readonly #path: string;
  readonly #windowMs: number;
  readonly #generation: number;
  readonly #now: () => number;
  #current = new Generation();
  #old = new Generation();
  /** The latest expiry in each generation: once the old one's is past, all of it has expired. */
  #currentExpires = 0;
  #oldExpires = 0;
  #writer: JsonlWriter | undefined;
  /**
   * While the store opens: everything to remember, from `dedupe.jsonl` and every inbox's
   * segments, remembered in the order it was accepted once all is read ({@link finishLoad}).
   * Remembered in the order read instead (inbox by inbox), the cap would keep whatever inboxes
   * came last, and forget the newest messages of the others: the very ones a client resends
   * after a restart that lost their acks.
   */
  #loading: Array<{ from: string; id: string; accepted: AcceptedMessage; inFile: boolean }> | undefined;
  /** Lines in `dedupe.jsonl`; once past {@link #checkAt}, the file is rewritten if most are expired or forgotten. */
  #fileLines = 0;
  #checkAt = COMPACT_MIN_LINES;
  /**
   * The entries whose lines are in `dedupe.jsonl` (or being appended), in file order; some may
   * have expired or been forgotten since (a rewrite leaves those out). A rewrite walks this,
   * not the whole index, whose entries are mostly still in segments.
   */
  #filed: Filed = [];
  /** The earliest expiry among {@link #filed}, and how many entries had left the index (a generation dropped, an entry replaced) at the last walk of it. */
  #filedExpires = Infinity;
  #left = 0;
  #leftAtWalk = 0;
  #compacting: Promise<void> | undefined;
  /** Set when a rewrite replaced the file but could not reopen it: appends would be lost, so they fail. */
  #broken: Error | undefined;
  /** The last `at` parsed, and its time: messages stored in one batch share their `at`. */
  #lastAt = '';
  #lastAtMs = 0;

  constructor(path: string, options: { windowMs: number; maxEntries: number; now?: () => number }) {
    this.#path = path;
    this.#windowMs = options.windowMs;
    this.#generation = Math.max(1, Math.ceil(options.maxEntries / 2));
    this.#now = options.now ?? Date.now;
  }

  /**
   * Reads `dedupe.jsonl`. What it and the inboxes' segments hold (passed to
   * {@link remember} meanwhile) is remembered by {@link finishLoad}.
   */
  async load(onWarning?: WarningListener): Promise<void> {
    this.#loading = [];
    let lines = 0;
    for await (const { value } of readJsonl(this.#path, DedupeRecord, { onWarning })) {
      lines++;
      this.#loading.push({ from: value.from, id: value.id, accepted: value, inFile: true });
    }
    this.#fileLines = lines;
    this.#writer = await JsonlWriter.open(this.#path);
  }

  /**
   * Remembers what was read while loading, in the order it was accepted (by
   * `at`), then rewrites `dedupe.jsonl` without what that left out (outside
   * the window, or beyond the cap).
   */
  async finishLoad(): Promise<void> {
    const loading = this.#loading ?? [];
    this.#loading = undefined;
    loading.sort((x, y) => (x.accepted.at < y.accepted.at ? -1 : x.accepted.at > y.accepted.at ? 1 : 0));
    for (const { from, id, accepted, inFile } of loading) this.#remember(from, id, accepted, inFile);
    if (this.#writer && this.#fileLines > 0) await this.#compact(1);
  }

  get size(): number {
    return this.#current.size + this.#old.size;
  }

  /** What was accepted as (from, id), while it is remembered. */
  get(from: string, id: string): AcceptedMessage | undefined {
    const hit = this.#lookup(from, id);
    return hit && { to: hit.to, seq: hit.seq, at: hit.at, digest: hit.digest };
  }

  #lookup(from: string, id: string): Remembered | undefined {
    const hit = this.#current.get(from, id) ?? this.#old.get(from, id);
    if (!hit) return undefined;
    if (hit.expires <= this.#now()) {
      if (!this.#current.delete(from, id)) this.#old.delete(from, id);
      return undefined;
    }
    return hit;
  }

  /** Remembers an accepted message (in memory; durable through its segment or {@link persist}). */
  remember(from: string, id: string, accepted: AcceptedMessage): void {
    if (this.#loading) this.#loading.push({ from, id, accepted, inFile: false });
    else this.#remember(from, id, accepted, false);
  }

  #remember(from: string, id: string, accepted: AcceptedMessage, inFile: boolean): void {
    if (accepted.at !== this.#lastAt) {
      this.#lastAt = accepted.at;
      this.#lastAtMs = Date.parse(accepted.at);
    }
    const expires = this.#lastAtMs + this.#windowMs;
    const now = this.#now();
    if (!(expires > now)) return;
    const entry: Remembered = { to: accepted.to, seq: accepted.seq, at: accepted.at, digest: accepted.digest, expires, inFile };
    if (inFile) this.#file(from, id, entry);
    if (this.#old.size > 0 && this.#old.replace(from, id, entry)) {
      this.#left++;
      if (expires > this.#oldExpires) this.#oldExpires = expires;
      return;
    }
    if (!this.#current.set(from, id, entry)) this.#left++;
    if (expires > this.#currentExpires) this.#currentExpires = expires;
    if (this.#current.size >= this.#generation) {
      if (this.#old.size > 0) this.#left++;
      this.#old = this.#current;
      this.#oldExpires = this.#currentExpires;
      this.#current = new Generation();
      this.#currentExpires = 0;
    } else if (this.#old.size > 0 && this.#oldExpires <= now) {
      this.#left++;
      this.#old = new Generation();
    }
  }

  #file(from: string, id: string, entry: Remembered): void {
    this.#filed.push(from, id, entry);
    if (entry.expires < this.#filedExpires) this.#filedExpires = entry.expires;
  }

  /** Writes entries still inside the window to `dedupe.jsonl` (before the segment holding them is deleted). */
  async persist(messages: Iterable<{ from: string; id: string }>): Promise<void> {
    const lines: string[] = [];
    const filed: Filed = [];
    for (const { from, id } of messages) {
      const hit = this.#lookup(from, id);
      // Already in the file (a trim tried again): once is enough.
      if (!hit || hit.inFile) continue;
      // Agent and message ids and times are validated formats that JSON writes as they are (see jsonText.ts).
      lines.push(recordLine(from, id, hit));
      filed.push(from, id, hit);
    }
    if (lines.length === 0 || !this.#writer) return;
    while (this.#compacting) await this.#compacting;
    // Failing keeps the segment (its caller deletes it only after this): its ids stay remembered there.
    if (this.#broken) throw this.#broken;
    // Counted as in the file from the moment they are appended: a rewrite starting meanwhile
    // flushes these lines to the old file, so it must write them into the new one.
    for (let i = 0; i < filed.length; i += 3) {
      (filed[i + 2] as Remembered).inFile = true;
      this.#file(filed[i] as string, filed[i + 1] as string, filed[i + 2] as Remembered);
    }
    this.#fileLines += lines.length;
    try {
      await this.#writer.append(lines);
    } catch (err) {
      // Not in the file after all: a trim tried again appends them again.
      const failed = new Set<unknown>();
      for (let i = 2; i < filed.length; i += 3) {
        (filed[i] as Remembered).inFile = false;
        failed.add(filed[i]);
      }
      const kept: Filed = [];
      for (let i = 0; i < this.#filed.length; i += 3) if (!failed.has(this.#filed[i + 2])) kept.push(this.#filed[i]!, this.#filed[i + 1]!, this.#filed[i + 2]!);
      this.#filed = kept;
      this.#fileLines -= lines.length;
      throw err;
    }
    if (this.#fileLines >= this.#checkAt) {
      this.#compacting ??= this.#compact(2).finally(() => (this.#compacting = undefined));
      await this.#compacting;
    }
  }

  /**
   * Rewrites `dedupe.jsonl` with only what it holds that is still remembered
   * (inside the window, not pushed out by the cap), if the file has more than
   * `ratio` times that many lines: without this, a server that runs for weeks
   * would keep every trimmed message's line until its next start. It walks
   * only the entries the file holds, and is checked again after as many new
   * lines as it keeps (at least {@link COMPACT_MIN_LINES}): O(1) per line.
   * A rewrite that fails leaves the file whole (the old one, or the new one
   * if only the final directory sync failed), and appends go on into it.
   */
  async #compact(ratio: number): Promise<void> {
    const now = this.#now();
    // Nothing filed can have left the index since the last walk (no generation dropped, no entry
    // replaced, none expired): all of it is live, and a walk would only confirm it.
    if (this.#left === this.#leftAtWalk && this.#filedExpires > now && this.#fileLines <= ratio * (this.#filed.length / 3)) {
      this.#checkAt = this.#fileLines + Math.max(COMPACT_MIN_LINES, this.#filed.length / 3);
      return;
    }
    this.#leftAtWalk = this.#left;
    this.#filedExpires = Infinity;
    const live: Filed = [];
    const filed = this.#filed;
    for (let i = 0; i < filed.length; i += 3) {
      const from = filed[i] as string;
      const id = filed[i + 1] as string;
      const entry = filed[i + 2] as Remembered;
      if (entry.inFile && entry.expires > now && (this.#current.get(from, id) ?? this.#old.get(from, id)) === entry) {
        live.push(from, id, entry);
        if (entry.expires < this.#filedExpires) this.#filedExpires = entry.expires;
      }
    }
    this.#filed = live;
    const count = live.length / 3;
    this.#checkAt = this.#fileLines + Math.max(COMPACT_MIN_LINES, count);
    if (this.#fileLines <= ratio * count) return;
    const old = this.#writer!;
    try {
      await old.flush();
    } catch {
      return;
    }
    let rewritten = true;
    try {
      const lines: string[] = [];
      for (let i = 0; i < live.length; i += 3) lines.push(`${recordLine(live[i] as string, live[i + 1] as string, live[i + 2] as Remembered)}\n`);
      await atomicWriteFile(this.#path, lines.join(''));
    } catch {
      rewritten = false; // Before the rename (the old file is in place) or after it (the new one is): reopen either.
    }
    try {
      this.#writer = await JsonlWriter.open(this.#path);
    } catch (err) {
      this.#broken = storageIoError(this.#path, err);
      return;
    }
    await old.close().catch(() => {});
    if (rewritten) {
      this.#fileLines = count;
      this.#checkAt = Math.max(COMPACT_MIN_LINES, 2 * count);
    }
  }

  async close(): Promise<void> {
    while (this.#compacting) await this.#compacting;
    await this.#writer?.close();
  }
}

/** A line of `dedupe.jsonl`: what {@link DedupeRecord} holds, in its order. */
function recordLine(from: string, id: string, r: AcceptedMessage): string {
  return `{"from":"${from}","id":"${id}","to":"${r.to}","seq":${r.seq},"at":"${r.at}","digest":${quote(r.digest)}}`;
}

/**
 * One generation of remembered messages, by sender and then id: no key is
 * built per lookup (a `${from}\n${id}` string costs an allocation and a
 * hash each time; the strings used here were hashed when first used).
 */
class Generation {
  readonly #bySender = new Map<string, Map<string, Remembered>>();
  size = 0;

  get(from: string, id: string): Remembered | undefined {
    return this.#bySender.get(from)?.get(id);
  }

  /** Whether the id was not there before (else its entry is replaced). */
  set(from: string, id: string, entry: Remembered): boolean {
    let ids = this.#bySender.get(from);
    if (!ids) this.#bySender.set(from, (ids = new Map()));
    const before = ids.size;
    ids.set(id, entry);
    this.size += ids.size - before;
    return ids.size > before;
  }

  /** Sets it only if the id is there; whether it was. */
  replace(from: string, id: string, entry: Remembered): boolean {
    const ids = this.#bySender.get(from);
    if (!ids?.has(id)) return false;
    ids.set(id, entry);
    return true;
  }

  delete(from: string, id: string): boolean {
    const ids = this.#bySender.get(from);
    if (!ids?.delete(id)) return false;
    this.size--;
    if (ids.size === 0) this.#bySender.delete(from);
    return true;
  }

  *entries(): IterableIterator<[string, string, Remembered]> {
    for (const [from, ids] of this.#bySender) for (const [id, entry] of ids) yield [from, id, entry];
  }
}
