import { createActor, fromPromise, type Actor, type InspectionEvent } from 'xstate';
import { inboxMachine, type BatchResult } from '../../../machines/inbox.js';
import type { DeliverFrame, ReceiptFrame } from '../../protocol/delivery.js';
import type { ResumeCursor, WelcomeFrame } from '../../protocol/handshake.js';
import type { Link } from '../connection/Link.js';
import { messageFromRecord, type IMMessage } from '../IMMessage.js';
import type { CursorFile, MessageRecord } from '../storage/records.js';
import type { WorkspaceStorage } from '../storage/WorkspaceStorage.js';
import type { Outbox } from './Outbox.js';
import type { PendingQueue } from './PendingQueue.js';
import { RecentIds } from './RecentIds.js';

type Arrival = { frame: DeliverFrame | ReceiptFrame; generation: number };

/** Options of the {@link Inbox}. */
export interface InboxOptions {
  storage: WorkspaceStorage;
  link: Link;
  outbox: Outbox;
  /** The digital-employee queue, in queue mode. */
  pending: PendingQueue | undefined;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  /** Receives newly received messages once they are durable, in order, each id once. */
  publish: (messages: IMMessage[]) => void;
  /** Reports something odd but survivable (a server reset). */
  onWarning: (message: string) => void;
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
  readonly #machine: Actor<typeof inboxMachine>;
  readonly #recent = new RecentIds(50_000);
  /** Messages found written by a batch that a crash interrupted, by id. */
  readonly #recovered = new Map<string, MessageRecord>();
  #epoch: string | undefined;
  /** Highest sequence durably stored (the cursor). */
  #stored = 0;
  #buffer: Arrival[] = [];
  #toPublish: IMMessage[] = [];
  /** The session deliveries are acknowledged on, and the highest sequence it delivered. */
  #session = { generation: -1, deliveredUpTo: 0, ackedUpTo: 0 };

  private constructor(options: InboxOptions) {
    this.#o = options;
    this.#machine = createActor(
      inboxMachine.provide({
        actors: { persistBatch: fromPromise<BatchResult>(() => this.#persist()) },
        actions: { acknowledge: (_, { upTo }) => this.#acknowledge(upTo) },
      }),
      { id: 'inbox', input: { storedUpTo: 0 }, ...(options.inspect ? { inspect: options.inspect } : {}) },
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

  get actor(): Actor<typeof inboxMachine> {
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
      void this.#o.storage.cursor.write({ version: 1, epoch, ackedUpTo }).catch((err: unknown) => this.#o.onWarning(String(err)));
    }
    this.#session = { generation, deliveredUpTo: ackedUpTo, ackedUpTo };
  }

  onDeliver(frame: DeliverFrame, generation: number): void {
    this.#arrive({ frame, generation });
  }

  onReceipt(frame: ReceiptFrame, generation: number): void {
    this.#arrive({ frame, generation });
  }

  /** Resolves once everything received so far is persisted (or failed to be). */
  async idle(): Promise<void> {
    while (this.#buffer.length > 0 || !this.#machine.getSnapshot().matches('idle')) {
      await new Promise((r) => setTimeout(r, 5));
      if (this.#machine.getSnapshot().status !== 'active') return;
    }
  }

  stop(): void {
    this.#machine.stop();
  }

  #arrive(arrival: Arrival): void {
    if (arrival.generation === this.#session.generation && arrival.frame.seq > this.#session.deliveredUpTo) {
      this.#session.deliveredUpTo = arrival.frame.seq;
    }
    this.#buffer.push(arrival);
    this.#machine.send({ type: 'DELIVERED', count: 1 });
  }

  /** The inbox machine's `persistBatch` actor: persists everything buffered. */
  async #persist(): Promise<BatchResult> {
    const batch = this.#buffer;
    this.#buffer = [];
    batch.sort((a, b) => a.frame.seq - b.frame.seq);
    const { storage, outbox, pending } = this.#o;
    const writes = new Map<string, MessageRecord[]>();
    const receipts: ReceiptFrame[] = [];
    const published: IMMessage[] = [];
    const queued: MessageRecord[] = [];
    let upTo = this.#stored;
    for (const { frame } of batch) {
      // At or below the cursor: a redelivery of something already stored.
      if (frame.seq <= upTo) continue;
      upTo = frame.seq;
      if (frame.type === 'receipt') {
        receipts.push(frame);
        continue;
      }
      const m = frame.message;
      if (this.#recent.has(m.id)) continue;
      const recovered = this.#recovered.get(m.id);
      const record: MessageRecord = recovered ?? {
        type: 'message',
        id: m.id,
        conversationId: m.conversationId,
        direction: 'in',
        from: m.from,
        to: m.to,
        text: m.text,
        ...(m.replyTo === undefined ? {} : { replyTo: m.replyTo }),
        ...(m.meta === undefined ? {} : { meta: m.meta }),
        sentAt: m.sentAt,
        seq: frame.seq,
        serverAt: m.serverAt,
      };
      this.#recent.add(m.id);
      published.push(messageFromRecord(record));
      if (recovered) {
        // Already in its conversation file (and the pending queue) from before the crash.
        this.#recovered.delete(m.id);
        continue;
      }
      const list = writes.get(record.conversationId);
      if (list) list.push(record);
      else writes.set(record.conversationId, [record]);
      queued.push(record);
    }
    if (upTo === this.#stored) return { count: batch.length, upTo };
    const epoch = this.#epoch!;
    const touched = new Set([...writes.keys(), ...receipts.flatMap((r) => r.messages.map((m) => m.conversationId))]);
    const files = await Promise.all([...touched].map(async (conversationId) => ({ conversationId, offset: await storage.conversations.length(conversationId) })));
    const fromSeq = this.#stored + 1;
    await storage.cursor.write({ version: 1, epoch, ackedUpTo: this.#stored, inflight: { fromSeq, toSeq: upTo, files } });
    await Promise.all([
      ...[...writes].map(([conversationId, records]) => storage.conversations.append(conversationId, records)),
      ...receipts.map((r) => outbox.receipt(r.messages, r.by, r.at)),
      ...(pending && queued.length ? [pending.add(queued)] : []),
    ]);
    await storage.cursor.write({ version: 1, epoch, ackedUpTo: upTo } satisfies CursorFile);
    this.#stored = upTo;
    this.#toPublish.push(...published);
    return { count: batch.length, upTo };
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

  /** Finds what an interrupted batch wrote, so its redelivery is recognised rather than written again. */
  async #recover(cursor: CursorFile): Promise<void> {
    const { fromSeq, toSeq, files } = cursor.inflight!;
    const found: MessageRecord[] = [];
    for (const { conversationId, offset } of files) {
      for await (const { value } of this.#o.storage.conversations.records(conversationId, offset)) {
        if (value.type === 'message' && value.direction === 'in' && value.seq !== undefined && value.seq >= fromSeq && value.seq <= toSeq) {
          this.#recovered.set(value.id, value);
          found.push(value);
        }
      }
    }
    // The batch may have stopped before the pending queue got them; adding is idempotent.
    if (this.#o.pending && found.length) await this.#o.pending.add(found);
    await this.#o.storage.cursor.write({ version: 1, epoch: cursor.epoch, ackedUpTo: cursor.ackedUpTo });
  }
}
