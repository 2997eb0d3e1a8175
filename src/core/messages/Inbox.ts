import { fromPromise, type InspectionEvent } from 'xstate';
import { createLifecycle, type Lifecycle } from '../statecharts/lifecycle.js';
import type { Clock } from '../Clock.js';
import { inboxMachine, type BatchResult } from '../../../machines/inbox.js';
import type { DeliverFrame, ReceiptFrame } from '../../protocol/delivery.js';
import type { ResumeCursor, WelcomeFrame } from '../../protocol/handshake.js';
import { IMClientError } from '../../errors.js';
import type { Link } from '../connection/Link.js';
import { messageFromRecord, type IMMessage } from '../IMMessage.js';
import type { CursorFile, MessageRecord } from '../storage/records.js';
import type { WorkspaceStorage } from '../storage/WorkspaceStorage.js';
import type { Outbox } from './Outbox.js';
import type { PendingQueue } from './PendingQueue.js';
import { RecentIds } from './RecentIds.js';

/** A frame as it arrived: on which connection, in which inbox epoch. */
type Arrival = { frame: DeliverFrame | ReceiptFrame; generation: number; epoch: string | undefined };

/** How long a batch's cursor waits for the next batch's intent to carry it before it is written on its own. */
const CURSOR_DELAY_MS = 50;

/** Messages are recognised by sender and id together, as the server deduplicates them. */
const keyOf = (from: string, id: string) => `${from}\n${id}`;

/** The history record of a delivered message, set field by field (no spreads of optional parts: this runs per message). */
function recordOf(m: DeliverFrame['message'], seq: number): MessageRecord {
  const record: MessageRecord = { type: 'message', id: m.id, conversationId: m.conversationId, direction: 'in', from: m.from, to: m.to, text: m.text, sentAt: m.sentAt, seq, serverAt: m.serverAt };
  if (m.replyTo !== undefined) record.replyTo = m.replyTo;
  if (m.meta !== undefined) record.meta = m.meta;
  return record;
}

/** Options of the {@link Inbox}. */
export interface InboxOptions {
  storage: WorkspaceStorage;
  link: Link;
  outbox: Outbox;
  /** The digital-employee queue, in queue mode. */
  pending: PendingQueue | undefined;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  clock?: Clock | undefined;
  /** Receives newly received messages once they are durable, in order, each id once. */
  publish: (messages: IMMessage[]) => void;
  /** Reports something odd but survivable (a server reset). */
  onWarning: (message: string) => void;
  /**
   * Reports a delivery batch that could not be written (it is retried, and
   * nothing is acknowledged meanwhile): once when a run of failures starts.
   */
  onError: (err: unknown) => void;
}

/**
 * The incoming half of the Message Handler. Deliveries and receipts are
 * buffered and persisted in batches by the inbox statechart's
 * `persistBatch` actor: a batch is bracketed by two writes of `cursor.json`
 * (an intent naming the files and offsets it will append to, then the new
 * cursor), with the conversation lines, the pending-queue entries and the
 * receipts' status lines durable in between. Only then is it acknowledged to
 * the server and published. A client killed mid-batch finds the intent on
 * start, recognises what reached the files, and takes the server's
 * redelivery of the rest: nothing is lost, nothing is written twice.
 */
export class Inbox {
  readonly #o: InboxOptions;
  readonly #machine: Lifecycle<typeof inboxMachine>;
  readonly #recent = new RecentIds(50_000);
  /** Messages found written by a batch that a crash interrupted, by sender and id. */
  readonly #recovered = new Map<string, MessageRecord>();
  /**
   * The interrupted batch's intent, kept in `cursor.json` until a batch
   * covering it commits: a second crash before the redelivery must still know
   * what the first one left in the files.
   */
  #carried: NonNullable<CursorFile['inflight']> | undefined;
  /**
   * The intent of a batch whose write failed part way: some of its lines may
   * be in the files. The next attempt looks first, so it writes none twice.
   */
  #unsure: NonNullable<CursorFile['inflight']> | undefined;
  /**
   * Messages (by sender and id) already durable in the pending queue although their batch
   * failed in another write: its retry must not queue them again (by then a worker may have
   * processed and acknowledged them, and a second add would hand them out twice).
   */
  readonly #inPending = new Set<string>();
  /** Whether the last batch failed (its error was reported; the retries' are not, until one succeeds). */
  #failing = false;
  /** Set when the batch being written failed only in its receipts' status writes, which the outbox reports itself. */
  #receiptsOnly = false;
  #epoch: string | undefined;
  /** Highest sequence durably stored (the cursor). */
  #stored = 0;
  #buffer: Arrival[] = [];
  /** Frames of the WebSocket message being read, told to the inbox machine as one DELIVERED event. */
  #arrived = 0;
  #toPublish: IMMessage[] = [];
  /** The cursor after the last batch, written on its own after a moment unless the next batch's intent carries it first. */
  #cursorDue: CursorFile | undefined;
  #cursorTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** The session deliveries are acknowledged on, and the highest sequence it delivered. */
  #session = { generation: -1, deliveredUpTo: 0, ackedUpTo: 0 };

  private constructor(options: InboxOptions) {
    this.#o = options;
    // A lean actor unless inspected, like the lifecycles: it takes an event per WebSocket message
    // with deliveries or receipts, and runs a batch per write (one per message when they come one by one).
    this.#machine = createLifecycle(
      inboxMachine.provide({
        actors: { persistBatch: fromPromise<BatchResult>(() => this.#persist()) },
        actions: { acknowledge: (_, { upTo }) => this.#acknowledge(upTo) },
      }),
      { id: 'inbox', input: { storedUpTo: 0 }, clock: options.clock, inspect: options.inspect },
    );
  }

  /** Opens the inbox: reads the cursor and finishes a batch a crash interrupted. */
  static async open(options: InboxOptions): Promise<Inbox> {
    const inbox = new Inbox(options);
    const cursor = await options.storage.cursor.read();
    if (cursor) {
      inbox.#epoch = cursor.epoch;
      inbox.#stored = cursor.ackedUpTo;
      if (cursor.inflight) await inbox.#recover(cursor);
    }
    inbox.#machine.start();
    return inbox;
  }

  get actor(): Lifecycle<typeof inboxMachine> {
    return this.#machine;
  }

  /** The cursor to resume from, for `hello`. */
  resume(): ResumeCursor | undefined {
    return this.#epoch === undefined ? undefined : { epoch: this.#epoch, ackedUpTo: this.#stored };
  }

  onWelcome(frame: WelcomeFrame, generation: number): void {
    const { epoch, ackedUpTo } = frame.inbox;
    if (this.#epoch !== undefined && this.#epoch !== epoch) {
      this.#o.onWarning(
        `the server's inbox epoch changed (${this.#epoch} -> ${epoch}): its data was reset; resuming from its position ${ackedUpTo}`,
      );
    }
    if (this.#epoch !== epoch) {
      this.#epoch = epoch;
      this.#stored = ackedUpTo;
      this.#cursorDue = undefined;
      // Intents of the old inbox name sequences that mean nothing in the new one.
      this.#carried = undefined;
      this.#unsure = undefined;
      this.#inPending.clear();
      void this.#o.storage.cursor.write({ version: 1, epoch, ackedUpTo }).catch((err: unknown) => this.#o.onWarning(String(err)));
    }
    this.#session = { generation, deliveredUpTo: ackedUpTo, ackedUpTo };
  }

  onDeliver(frame: DeliverFrame, generation: number): void {
    this.#arrive({ frame, generation, epoch: this.#epoch });
  }

  onReceipt(frame: ReceiptFrame, generation: number): void {
    this.#arrive({ frame, generation, epoch: this.#epoch });
  }

  /** Resolves once no batch is being written (one that failed waits in `retrying` and is not waited for). */
  async idle(): Promise<void> {
    while (this.#arrived > 0 || this.#machine.getSnapshot().matches('writing')) {
      await new Promise((r) => setTimeout(r, 5));
      if (this.#machine.getSnapshot().status !== 'active') break;
    }
    await this.#writeDueCursor();
  }

  stop(): void {
    this.#machine.stop();
    void this.#writeDueCursor();
    // A batch still finishing (its write outlived close's wait) leaves its cursor to its intent.
    this.#stopped = true;
  }

  #arrive(arrival: Arrival): void {
    if (arrival.generation === this.#session.generation && arrival.frame.seq > this.#session.deliveredUpTo) {
      this.#session.deliveredUpTo = arrival.frame.seq;
    }
    this.#buffer.push(arrival);
    this.#arrived++;
  }

  /**
   * Tells the inbox machine about the frames of one WebSocket message as one
   * DELIVERED event (a batch of a thousand deliveries is one transition, not
   * a thousand). Called once the message's frames were all handed over.
   */
  endOfMessage(): void {
    const count = this.#arrived;
    if (count === 0) return;
    this.#arrived = 0;
    if (this.#machine.getSnapshot().status === 'active') this.#machine.send({ type: 'DELIVERED', count });
  }

  /**
   * The inbox machine's `persistBatch` actor: persists everything buffered.
   * If any write fails, the batch goes back to the front of the buffer and
   * nothing is acknowledged; the machine retries after a pause.
   */
  async #persist(): Promise<BatchResult> {
    const batch = this.#buffer;
    this.#buffer = [];
    try {
      const upTo = await this.#persistBatch(batch);
      this.#failing = false;
      return { count: batch.length, upTo, remaining: this.#buffer.length };
    } catch (err) {
      this.#buffer = [...batch, ...this.#buffer];
      // Not reported here: a receipt's failure (the outbox reports it), a server reset (a warning says so).
      const ours = !this.#receiptsOnly && !(err instanceof IMClientError && err.code === 'CONNECTION_LOST');
      this.#receiptsOnly = false;
      if (ours && !this.#failing) this.#o.onError(err);
      if (ours) this.#failing = true;
      throw err;
    }
  }

  async #persistBatch(arrivals: Arrival[]): Promise<number> {
    if (this.#unsure) {
      await this.#scan(this.#unsure);
      this.#unsure = undefined;
    }
    const epoch = this.#epoch;
    // Frames from before a server reset carry sequences of the old inbox: they mean nothing now.
    const batch = arrivals.filter((a) => a.epoch === epoch).sort((a, b) => a.frame.seq - b.frame.seq);
    const { storage, outbox, pending } = this.#o;
    const writes = new Map<string, MessageRecord[]>();
    const receipts: ReceiptFrame[] = [];
    const published: IMMessage[] = [];
    /** Each published message's (from, id) key, built once: a fresh concatenation is hashed anew by every lookup. */
    const keys: string[] = [];
    const queued: MessageRecord[] = [];
    const stored = this.#stored;
    let upTo = stored;
    for (const { frame } of batch) {
      // At or below the cursor: a redelivery of something already stored.
      if (frame.seq <= upTo) continue;
      upTo = frame.seq;
      if (frame.type === 'receipt') {
        receipts.push(frame);
        continue;
      }
      const m = frame.message;
      const key = keyOf(m.from, m.id);
      if (this.#recent.has(key)) continue;
      const recovered = this.#recovered.get(key);
      const record = recovered ?? recordOf(m, frame.seq);
      published.push(messageFromRecord(record));
      keys.push(key);
      // Already in its conversation file from before a crash: the pending queue may still need it.
      if (!this.#inPending.has(key)) queued.push(record);
      if (recovered) continue;
      const list = writes.get(record.conversationId);
      if (list) list.push(record);
      else writes.set(record.conversationId, [record]);
    }
    if (upTo === stored || epoch === undefined) return upTo;
    // The intent lets a restart recognise messages an interrupted batch wrote. A batch of receipts
    // alone writes only status lines, which a replay writes again harmlessly: it needs none.
    let intent: CursorFile['inflight'];
    if (writes.size > 0 || queued.length > 0 || this.#carried !== undefined) {
      const touched = new Set([...writes.keys(), ...receipts.flatMap((r) => r.messages.map((m) => m.conversationId))]);
      const files = await Promise.all([...touched].map(async (conversationId) => ({ conversationId, offset: await storage.conversations.scanStart(conversationId) })));
      this.#checkEpoch(epoch);
      intent = mergeIntent(this.#carried, { fromSeq: stored + 1, toSeq: upTo, files });
      // The intent carries the last batch's cursor (ackedUpTo, and the carried intent): that one need not be
      // written on its own. Dropped before the intent is appended, so it cannot land after it in the log.
      const due = this.#cursorDue;
      this.#cursorDue = undefined;
      try {
        await storage.cursor.write({ version: 1, epoch, ackedUpTo: stored, inflight: intent });
      } catch (err) {
        this.#cursorDue ??= due;
        throw err;
      }
    }
    const adding = pending && queued.length ? pending.add(queued) : undefined;
    // Pushed one by one, not spread from arrays that are empty in one batch and full in the next:
    // each spread of an empty array took this function's optimised code back to the interpreter
    // (a "wrong map" deopt, then a compile of 10-25 ms again on a background thread).
    const work: Array<Promise<unknown> | undefined> = [];
    for (const [conversationId, records] of writes) work.push(storage.conversations.append(conversationId, records));
    for (const r of receipts) work.push(outbox.receipt(r.messages, r.by, r.at));
    work.push(adding);
    const results = await Promise.allSettled(work);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const receiptsFrom = writes.size;
    const own = results.find((r, i): r is PromiseRejectedResult => r.status === 'rejected' && (i < receiptsFrom || i >= receiptsFrom + receipts.length));
    if (failed) {
      this.#receiptsOnly = own === undefined;
      this.#unsure = intent;
      if (adding && results.at(-1)!.status === 'fulfilled') for (const r of queued) this.#inPending.add(keyOf(r.from, r.id));
      throw (own ?? failed).reason;
    }
    this.#checkEpoch(epoch);
    const carried = this.#carried && this.#carried.toSeq > upTo ? { ...this.#carried, fromSeq: upTo + 1 } : undefined;
    // The new cursor is not waited for: the lines are durable, and until the cursor is, the intent
    // written before them stands in for it (a restart finds those lines through it). It reaches the
    // disk with the next batch's intent, which carries it, or on its own a moment later: messages
    // arriving one at a time then cost one cursor write each, not two.
    this.#cursorDue = { version: 1, epoch, ackedUpTo: upTo, ...(carried ? { inflight: carried } : {}) };
    if (!this.#stopped) this.#cursorTimer ??= setTimeout(() => void this.#writeDueCursor(), CURSOR_DELAY_MS).unref();
    this.#carried = carried;
    this.#stored = upTo;
    for (const key of keys) {
      this.#recent.add(key);
      this.#recovered.delete(key);
      this.#inPending.delete(key);
    }
    this.#toPublish.push(...published);
    return upTo;
  }

  /** Writes the last batch's cursor if no later intent carried it; never rejects (the intent stands in for it). */
  async #writeDueCursor(): Promise<void> {
    clearTimeout(this.#cursorTimer);
    this.#cursorTimer = undefined;
    const due = this.#cursorDue;
    if (!due) return;
    this.#cursorDue = undefined;
    await this.#o.storage.cursor
      .write(due)
      .catch((err: unknown) => this.#o.onWarning(`the inbox cursor could not be written (the batch's intent stands in for it): ${String(err)}`));
  }

  /** A welcome from a reset server arrived mid-batch: this batch belongs to the old inbox. */
  #checkEpoch(epoch: string): void {
    if (this.#epoch !== epoch) throw new IMClientError('CONNECTION_LOST', 'the server inbox was reset while a batch was being written');
  }

  /** The inbox machine's `acknowledge` action: cumulative ack, then publication. */
  #acknowledge(upTo: number): void {
    const s = this.#session;
    // Only acknowledge on the session that delivered, and never past what it delivered;
    // after a reconnect the resume cursor in hello does the job.
    const ack = Math.min(upTo, s.deliveredUpTo);
    if (this.#o.link.generation === s.generation && ack > s.ackedUpTo) {
      if (this.#o.link.send({ type: 'deliver_ack', upTo: ack })) s.ackedUpTo = ack;
    }
    if (this.#toPublish.length > 0) {
      const out = this.#toPublish;
      this.#toPublish = [];
      this.#o.publish(out);
    }
  }

  /**
   * Finds what an interrupted batch wrote, so its redelivery is recognised
   * rather than written again. The intent stays in `cursor.json` until a batch
   * covering it commits.
   */
  async #recover(cursor: CursorFile): Promise<void> {
    await this.#scan(cursor.inflight!);
    this.#carried = cursor.inflight;
  }

  /** Notes the messages an intent's batch already wrote to its files. */
  async #scan(intent: NonNullable<CursorFile['inflight']>): Promise<void> {
    for (const { conversationId, offset } of intent.files) {
      for await (const { value } of this.#o.storage.conversations.records(conversationId, offset)) {
        if (value.type === 'message' && value.direction === 'in' && value.seq !== undefined && value.seq >= intent.fromSeq && value.seq <= intent.toSeq) {
          this.#recovered.set(keyOf(value.from, value.id), value);
        }
      }
    }
  }
}

/** An intent covering both an interrupted batch and the one now being written. */
function mergeIntent(
  carried: NonNullable<CursorFile['inflight']> | undefined,
  next: NonNullable<CursorFile['inflight']>,
): NonNullable<CursorFile['inflight']> {
  if (!carried) return next;
  const files = new Map<string, number>();
  for (const f of [...carried.files, ...next.files]) files.set(f.conversationId, Math.min(f.offset, files.get(f.conversationId) ?? Infinity));
  return {
    fromSeq: Math.min(carried.fromSeq, next.fromSeq),
    toSeq: Math.max(carried.toSeq, next.toSeq),
    files: [...files].map(([conversationId, offset]) => ({ conversationId, offset })),
  };
}
