import { randomBytes } from 'node:crypto';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { IMClientError, storageIoError } from '../../errors.js';
import { fsyncDir } from '../../fs/fsyncDir.js';
import { JsonlWriter } from '../../fs/JsonlWriter.js';
import { readJsonl } from '../../fs/readJsonl.js';
import type { StorageWarning, WarningListener } from '../../fs/StorageWarning.js';
import { ReceiptItem } from '../../protocol/delivery.js';
import type { InboxPosition } from '../../protocol/handshake.js';
import { WireMessage } from '../../protocol/message.js';
import { InboxFullError, type InboxEntry } from './InboxStore.js';
import type { OpenSegments, Parkable } from './OpenSegments.js';

/** Lines of an inbox segment file. */
export const SegmentRecord = z.discriminatedUnion('k', [
  /** First line of every segment: the inbox's identity and position when the segment began. */
  z.object({ k: z.literal('h'), epoch: z.string().min(1), createdAt: z.string(), latestSeq: z.int().nonnegative(), ackedUpTo: z.int().nonnegative() }),
  /** A message, with the digest of its content. */
  z.object({ k: z.literal('m'), seq: z.int().positive(), d: z.string(), m: WireMessage }),
  /** A receipt for messages this agent sent. */
  z.object({
    k: z.literal('r'),
    seq: z.int().positive(),
    r: z.object({ by: z.string(), at: z.string(), messages: z.array(ReceiptItem) }),
  }),
  /** The agent acknowledged everything up to `upTo`. */
  z.object({ k: z.literal('a'), upTo: z.int().nonnegative() }),
]);
export type SegmentRecord = z.infer<typeof SegmentRecord>;

const SEGMENT_NAME = /^(\d{12})\.jsonl$/;

interface Segment {
  path: string;
  /** Highest sequence written to the segment (0 if none). */
  lastSeq: number;
  /** Sender and id of every message in it, for the dedupe index when it is deleted (no need to read it back). */
  messages: Array<{ from: string; id: string }>;
}

/** What an inbox needs from its store. */
export interface InboxContext {
  /** Roll to a new segment file once the current one reaches this size. */
  segmentBytes: number;
  onWarning?: WarningListener | undefined;
  /** Called with the message entries of a segment about to be deleted. */
  beforeTrim(messages: Array<{ from: string; id: string }>): Promise<void>;
  /** Called for each message found while loading. */
  onLoadedMessage(record: Extract<SegmentRecord, { k: 'm' }>): void;
  /** The store's bound on open segment files, which may close this inbox's while it is idle. */
  segments: OpenSegments;
}

/**
 * One agent's durable inbox: segment files `{startSeq}.jsonl` in
 * `inboxes/{agentId}/`, appended with group commit, deleted once every entry
 * in them is acknowledged. Unacknowledged entries are also held in memory,
 * as the JSON they are delivered with.
 */
export class AgentInbox implements Parkable {
  readonly agentId: string;
  readonly dir: string;
  readonly #ctx: InboxContext;
  /** Kept by the store's {@link OpenSegments}. */
  segmentUsedAt = 0;
  segmentCounted = false;
  epoch = '';
  latestSeq = 0;
  ackedUpTo = 0;
  /** Highest sequence known durable; entries above it are not delivered yet. */
  #durableSeq = 0;
  /** Highest acknowledgement on its way to disk; a segment header written meanwhile records it. */
  #ackingUpTo = 0;
  /** Unacknowledged entries: `#entries[#head..]`, in sequence order. */
  #entries: InboxEntry[] = [];
  #head = 0;
  #segments: Segment[] = [];
  /** The current segment's writer, while its file is open (see {@link park}). */
  #writer: JsonlWriter | undefined;
  /** The current segment's length when its writer was last closed. */
  #parkedLength = 0;
  /** A parked writer finishing its last lines and closing: the file opens again only after. */
  #parking: Promise<void> | undefined;
  /** Serialises segment rolls and trims with appends. */
  #rolling: Promise<void> | undefined;
  #closed = false;

  constructor(agentId: string, dir: string, ctx: InboxContext) {
    this.agentId = agentId;
    this.dir = dir;
    this.#ctx = ctx;
  }

  /** Loads the inbox from its segments, or creates it with a fresh epoch. */
  async load(): Promise<void> {
    let names: string[] = [];
    try {
      names = (await readdir(this.dir)).filter((n) => SEGMENT_NAME.test(n)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageIoError(this.dir, err);
    }
    for (const name of names) {
      const segment: Segment = { path: join(this.dir, name), lastSeq: 0, messages: [] };
      let header = false;
      let records = 0;
      let unreadable = 0;
      const onWarning = (w: StorageWarning) => {
        if (!w.reason.startsWith('torn last line')) unreadable++;
        this.#ctx.onWarning?.(w);
      };
      for await (const { value } of readJsonl(segment.path, SegmentRecord, { onWarning })) {
        if (value.k === 'h') header = true;
        records++;
        this.#replay(value, segment);
      }
      if (!header && records === 0) {
        // Complete lines that cannot be read are damage, not an interrupted start: left for a person to look at.
        if (unreadable > 0) throw storageIoError(segment.path, new Error(`segment without a header and with ${unreadable} unreadable lines`));
        // A segment whose start a crash or a failed write cut short, before its header was durable (empty,
        // or a torn header): nothing was stored in it (appends come after the header). Started again when needed.
        this.#ctx.onWarning?.({ file: segment.path, offset: 0, reason: 'segment without a header (its start was interrupted): removed' });
        await unlink(segment.path).catch((err: unknown) => {
          throw storageIoError(segment.path, err);
        });
        continue;
      }
      this.#segments.push(segment);
    }
    if (this.#segments.length > 0 && !this.epoch) {
      throw storageIoError(this.dir, new Error('no segment of this inbox has a valid header: its epoch is unknown'));
    }
    this.#durableSeq = this.latestSeq;
    this.#dropAcked();
    if (this.#segments.length === 0) {
      this.epoch = randomBytes(8).toString('hex');
      await mkdir(this.dir, { recursive: true }).catch((err: unknown) => {
        throw storageIoError(this.dir, err);
      });
      // The new folder's entry in `inboxes/` is durable before anything stored in it is acknowledged.
      await fsyncDir(dirname(this.dir)).catch((err: unknown) => {
        throw storageIoError(dirname(this.dir), err);
      });
      await this.#startSegment();
    }
    // An existing segment is opened when first written to: a server that has seen many agents does
    // not hold a file open for each of them.
  }

  /**
   * Closes the current segment's file while the inbox is idle (lines being
   * written finish first); the next write opens it again. Refused (false)
   * while the inbox changes its file (rolls to a new segment, trims, opens
   * the segment again) or is closed.
   */
  park(): boolean {
    const writer = this.#writer;
    if (!writer) return true;
    if (this.#rolling || this.#closed) return false;
    this.#writer = undefined;
    this.#parkedLength = writer.length;
    // Every park still closing is waited for, not only the latest.
    const parking: Promise<void> = Promise.all([this.#parking, writer.close().catch(() => {})]).then(() => {
      if (this.#parking === parking) this.#parking = undefined;
    });
    this.#parking = parking;
    return true;
  }

  /**
   * The current segment's writer, to append to in the step the caller resumes
   * in: at once (no await, as before the pool) when the segment is open and
   * nothing changes the inbox's file; otherwise once that is done, opening
   * the segment again if it was parked. The caller checks it was not parked
   * while it resumed (`closed`).
   */
  #writable(): JsonlWriter | Promise<JsonlWriter> {
    const writer = this.#writer;
    if (writer && !this.#rolling && !this.#closed && !writer.closed) {
      this.#ctx.segments.used(this);
      return writer;
    }
    return this.#current();
  }

  async #current(): Promise<JsonlWriter> {
    for (;;) {
      if (this.#closed) throw new IMClientError('CLOSED', `the inbox of ${this.agentId} is closed`);
      // Rolls, trims and reopens all change the inbox's file: one at a time, under `#rolling`.
      while (this.#rolling) await this.#rolling;
      const writer = this.#writer;
      if (writer && !writer.closed) {
        this.#ctx.segments.used(this);
        return writer;
      }
      if (this.#closed) throw new IMClientError('CLOSED', `the inbox of ${this.agentId} is closed`);
      this.#rolling = this.#reopen().finally(() => this.#rolled());
    }
  }

  /** Opens the current segment again, once its parked writers have finished and closed. */
  async #reopen(): Promise<void> {
    while (this.#parking) await this.#parking;
    if (this.#closed || this.#writer) return;
    this.#writer = await JsonlWriter.open(this.#segments.at(-1)!.path);
  }

  /** A roll, trim or reopen ended: the store may close this inbox's file now if it had to leave it open meanwhile. */
  #rolled(): void {
    this.#rolling = undefined;
    this.#ctx.segments.idle(this);
  }

  /** The current segment's length, open or parked. */
  get #segmentLength(): number {
    return this.#writer?.length ?? this.#parkedLength;
  }

  position(): InboxPosition {
    return { epoch: this.epoch, latestSeq: this.#durableSeq, ackedUpTo: this.ackedUpTo };
  }

  /** Number of unacknowledged entries. */
  get backlog(): number {
    return this.#entries.length - this.#head;
  }

  /**
   * Appends an entry; the returned promise resolves once it is durable (and
   * deliverable). With `maxBacklog`, refuses (InboxFullError) when that many
   * entries are unacknowledged, checked in the same step as the append.
   */
  async append(build: (seq: number) => { line: string; entry: InboxEntry }, maxBacklog = Infinity): Promise<number> {
    const { first, count } = await this.appendMany(1, (_, seq) => build(seq), maxBacklog);
    if (count === 0) throw new InboxFullError(this.agentId, maxBacklog);
    return first;
  }

  /**
   * Appends `count` entries in order with one write (`build(i, seq)` makes
   * the i-th); resolves once they are durable with the sequence of the first
   * and how many were appended. With `maxBacklog`, the entries that would make
   * more unacknowledged ones are refused (the end of the batch: a batch is
   * appended in order or not at all past that point), in the same step.
   */
  async appendMany(count: number, build: (i: number, seq: number) => { line: string; entry: InboxEntry }, maxBacklog = Infinity): Promise<{ first: number; count: number }> {
    let writer: JsonlWriter;
    let rolledFrom: JsonlWriter | undefined;
    for (;;) {
      const w = this.#writable();
      writer = w instanceof JsonlWriter ? w : await w;
      // From here to the append, one synchronous step: no park, roll or close can come between.
      // (Parked, or a roll or trim begun, while this call resumed: wait again.)
      if (writer.closed || this.#rolling) continue;
      if (this.#closed) throw new IMClientError('CLOSED', `the inbox of ${this.agentId} is closed`);
      // Checked again after a roll: appends that waited for it may have filled the new segment already.
      if (writer.length < this.#ctx.segmentBytes || writer === rolledFrom) break;
      rolledFrom = writer;
      this.#rolling ??= this.#startSegment().finally(() => this.#rolled());
      await this.#rolling;
    }
    const n = Math.max(0, Math.min(count, maxBacklog - this.backlog));
    const first = this.latestSeq + 1;
    if (n === 0) return { first, count: 0 };
    const segment = this.#segments.at(-1)!;
    const lines: string[] = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const seq = ++this.latestSeq;
      const { line, entry } = build(i, seq);
      lines[i] = line;
      this.#entries.push(entry);
      if (entry.kind === 'message') segment.messages.push({ from: entry.from, id: entry.id });
    }
    segment.lastSeq = this.latestSeq;
    const last = this.latestSeq;
    try {
      await writer.append(n === 1 ? lines[0]! : lines);
    } catch (err) {
      // Never deliver what may not be on disk; the senders get a retryable nack and resend.
      const i = this.#indexAfter(first - 1);
      let end = i;
      while (end < this.#entries.length && this.#entries[end]!.seq <= last) end++;
      this.#entries.splice(i, end - i);
      throw err;
    }
    // Batches complete in order, so every sequence up to this one is durable too.
    if (last > this.#durableSeq) this.#durableSeq = last;
    return { first, count: n };
  }

  /** Durable, unacknowledged entries with `seq > afterSeq`, at most `limit`. */
  read(afterSeq: number, limit: number): InboxEntry[] {
    const out: InboxEntry[] = [];
    for (let i = this.#indexAfter(afterSeq); i < this.#entries.length && out.length < limit; i++) {
      const e = this.#entries[i]!;
      if (e.seq > this.#durableSeq) break;
      out.push(e);
    }
    return out;
  }

  /** Index in `#entries` of the first unacknowledged entry with `seq > afterSeq` (binary search). */
  #indexAfter(afterSeq: number): number {
    let lo = this.#head;
    let hi = this.#entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#entries[mid]!.seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Unacknowledged entries with `seq <= upTo`. */
  coveredBy(upTo: number): InboxEntry[] {
    const out: InboxEntry[] = [];
    for (let i = this.#head; i < this.#entries.length; i++) {
      const e = this.#entries[i]!;
      if (e.seq > upTo) break;
      out.push(e);
    }
    return out;
  }

  /** Records a cumulative acknowledgement durably, then trims segments it fully covers. */
  async ack(upTo: number): Promise<void> {
    if (this.#closed) throw new IMClientError('CLOSED', `the inbox of ${this.agentId} is closed`);
    upTo = Math.min(upTo, this.#durableSeq);
    if (upTo <= this.ackedUpTo) return;
    let writer: JsonlWriter;
    do {
      const w = this.#writable();
      writer = w instanceof JsonlWriter ? w : await w;
    } while (writer.closed || this.#rolling); // parked, or a roll begun, while this call resumed
    this.#ackingUpTo = Math.max(this.#ackingUpTo, upTo);
    await writer.append(JSON.stringify({ k: 'a', upTo } satisfies SegmentRecord));
    if (upTo <= this.ackedUpTo) return;
    this.ackedUpTo = upTo;
    this.#dropAcked();
    if (this.#rolling || this.#closed) return;
    this.#rolling = this.#trim().finally(() => this.#rolled());
    await this.#rolling;
  }

  async close(): Promise<void> {
    this.#closed = true;
    try {
      while (this.#rolling) await this.#rolling.catch(() => {});
      await this.#writer?.close();
    } finally {
      // Parked writers still finishing their last lines, whatever the current one's close did.
      await this.#parking;
      this.#ctx.segments.closed(this);
    }
  }

  #replay(record: SegmentRecord, segment: Segment): void {
    switch (record.k) {
      case 'h':
        this.epoch ||= record.epoch;
        this.latestSeq = Math.max(this.latestSeq, record.latestSeq);
        this.ackedUpTo = Math.max(this.ackedUpTo, record.ackedUpTo);
        return;
      case 'a':
        this.ackedUpTo = Math.max(this.ackedUpTo, record.upTo);
        return;
      case 'm':
      case 'r': {
        if (record.seq <= (this.#entries.at(-1)?.seq ?? 0)) return;
        this.latestSeq = Math.max(this.latestSeq, record.seq);
        segment.lastSeq = record.seq;
        if (record.k === 'm') {
          segment.messages.push({ from: record.m.from, id: record.m.id });
          this.#ctx.onLoadedMessage(record);
          this.#entries.push({
            seq: record.seq,
            kind: 'message',
            payload: JSON.stringify(record.m),
            from: record.m.from,
            id: record.m.id,
            conversationId: record.m.conversationId,
          });
        } else {
          this.#entries.push({ seq: record.seq, kind: 'receipt', payload: JSON.stringify(record.r) });
        }
        return;
      }
    }
  }

  #dropAcked(): void {
    while (this.#head < this.#entries.length && this.#entries[this.#head]!.seq <= this.ackedUpTo) this.#head++;
    // Compact the array once the consumed prefix dominates, keeping shifts amortised O(1).
    if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Starts a new segment whose header records the current position. */
  async #startSegment(): Promise<void> {
    const startSeq = this.latestSeq + 1;
    const path = join(this.dir, `${String(startSeq).padStart(12, '0')}.jsonl`);
    // Nothing stored since the current segment began (a roll before a batch refused whole, say):
    // it is the segment a new one would be, by name and content. A second writer on the same file
    // would make two segments of one file, and trimming the first would delete the live one.
    if (this.#segments.at(-1)?.path === path) return;
    // The current segment's last lines (parked, still being written) go in before the next segment begins.
    while (this.#parking) await this.#parking;
    const writer = await JsonlWriter.open(path);
    try {
      await writer.append(
        JSON.stringify({
          k: 'h',
          epoch: this.epoch,
          createdAt: new Date().toISOString(),
          latestSeq: this.latestSeq,
          ackedUpTo: Math.max(this.ackedUpTo, this.#ackingUpTo),
        } satisfies SegmentRecord),
      );
    } catch (err) {
      // The file stays without a header: the next attempt appends one, and a restart removes it.
      await writer.close().catch(() => {});
      throw err;
    }
    const previous = this.#writer;
    this.#writer = writer;
    this.#segments.push({ path, lastSeq: this.latestSeq, messages: [] });
    this.#ctx.segments.used(this);
    await previous?.close();
  }

  /**
   * Deletes segments whose entries are all acknowledged. When the current
   * segment is fully acknowledged too and has grown, a fresh segment takes
   * over first, so a caught-up agent's inbox shrinks to one header line.
   */
  async #trim(): Promise<void> {
    const current = this.#segments.at(-1)!;
    if (this.ackedUpTo >= this.latestSeq && current.lastSeq > 0 && this.#segmentLength >= this.#ctx.segmentBytes / 8) {
      await this.#startSegment();
    }
    while (this.#segments.length > 1 && this.#segments[0]!.lastSeq <= this.ackedUpTo) {
      const segment = this.#segments[0]!;
      await this.#ctx.beforeTrim(segment.messages);
      try {
        await unlink(segment.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw storageIoError(segment.path, err);
      }
      this.#segments.shift();
    }
  }
}
