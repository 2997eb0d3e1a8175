import type { InspectionEvent } from 'xstate';
import type { Clock } from '../Clock.js';
import { IMClientError } from '../../errors.js';
import { messageMachine, type MessageContext } from '../../../machines/message.js';
import { outboxMachine } from '../../../machines/outbox.js';
import type { ReceiptItem } from '../../protocol/delivery.js';
import type { AckFrame, NackFrame } from '../../protocol/send.js';
import type { Link } from '../connection/Link.js';
import type { MessageRecord, OutboxEntry, OutgoingStatus, StatusRecord } from '../storage/records.js';
import type { OutboxJournal } from '../storage/OutboxJournal.js';
import type { WorkspaceStorage } from '../storage/WorkspaceStorage.js';
import { createLifecycle, finishLifecycle, type Lifecycle, type LifecycleSnapshot } from '../statecharts/lifecycle.js';
import { deferred, type Deferred } from '../../util/deferred.js';
import { RecentMap } from '../../util/RecentMap.js';
import { isoFormatter } from '../../util/isoTime.js';
import { conversationLine, sendFrameTextOf, statusLine } from '../../util/jsonText.js';
import { MinHeap } from './MinHeap.js';

type MessageLogic = typeof messageMachine;
type MessageActor = Lifecycle<MessageLogic>;
type MessageSnapshot = LifecycleSnapshot<MessageLogic>;

/** A status change of an outgoing message, reported once it is durable. */
export interface StatusUpdate {
  id: string;
  conversationId: string;
  status: Exclude<OutgoingStatus, 'queued' | 'sending'>;
  at: string;
  seq?: number;
  serverAt?: string;
  deliveredAt?: string;
  error?: StatusRecord['reason'];
}

/** Options of the {@link Outbox}. */
export interface OutboxOptions {
  storage: WorkspaceStorage;
  /** This agent, the sender of every message in the outbox. */
  agentId: string;
  link: Link;
  /** Most messages awaiting their ack at once. */
  window: number;
  ackTimeoutMs: number;
  maxAttempts: number;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  /** The clock of every actor (and of the expiry sweep). */
  clock?: Clock | undefined;
  /** Called once a status change is on disk. */
  onStatus: (update: StatusUpdate) => void;
  /**
   * Called as soon as the server's ack arrives, before the `acked` line is
   * durable locally (the server has stored the message; a crash before the
   * line is written only resends it, and the server answers with the same ack).
   */
  onAcked?: (update: StatusUpdate) => void;
  /** Called when a status could not be written. */
  onError: (err: unknown) => void;
  /** Acked messages whose lifecycle context is kept for the receipt; older ones are restored from what the receipt tells. */
  maxRestingActors?: number;
  /**
   * Most queued messages kept in memory. Beyond it, new messages wait in
   * `outbox.jsonl` only (their ids in memory) and are read back, in order,
   * a quarter of a send window (or half of this, if less) at a time as the queue drains.
   * @default 10000
   */
  maxQueuedInMemory?: number;
}

/** The sends of one conversation in a batch: one promise for all of them. */
interface SendGroup extends Deferred {
  items: Array<{ entry: OutboxEntry; record: MessageRecord; ordinal: number; callerId: boolean }>;
}

/**
 * The status changes of one conversation in a batch: one append. Its promise
 * settles once they are reported and out of the outbox journal, or rejects
 * if their line could not be written (callers must not move on as if it were).
 */
interface StatusGroup extends Deferred {
  /** Each change as reported; its status line is written from it ({@link statusLineOf}). */
  items: StatusUpdate[];
}

/** What a read-back did. */
interface ReadBack {
  /** Messages taken back into the queue. */
  read: number;
  /** Whether it got anywhere: found lines of spilled messages (some may have been finished meanwhile), or messages were spilled while it read (they may lie past where it stopped). */
  progress: boolean;
}

const NO_READ: ReadBack = { read: 0, progress: false };

interface Slot {
  entry: OutboxEntry;
  /** Send order: lower goes first. */
  ordinal: number;
  /** Between DISPATCH and leaving sending/awaitingAck. */
  inflight: boolean;
  /** The previous and next unacknowledged messages of the same conversation, in send order. */
  prev: Slot | undefined;
  next: Slot | undefined;
}

/** Pause after a retryable nack that does not say how long to wait. */
const RETRY_PAUSE_MS = 1000;
/** The first and the longest pause before a failed refill is tried again. */
const REFILL_RETRY_MS = 100;
const REFILL_RETRY_MAX_MS = 5000;
/** How often queued messages are checked for an expired time to live. */
const SWEEP_INTERVAL_MS = 30_000;
/** Real time, with timers that do not keep the process alive. */
const REAL_TIME: Clock = {
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

/**
 * The outgoing half of the Message Handler. Every message is first made
 * durable (its `message` line in the conversation log, its `put` in
 * `outbox.jsonl`); the outbox statechart then drains the queue while online,
 * oldest first, within the send window. Each message in flight runs the
 * message statechart as its own actor; its `persistStatus` action appends
 * the status line and, once that is durable, the message leaves the outbox
 * (the line is the record that it left). Messages waiting for a slot are
 * plain entries (the machine's `queued` state, implicitly), so a queue of
 * 100k costs no actors.
 */
export class Outbox {
  readonly #o: OutboxOptions;
  readonly #machine: Lifecycle<typeof outboxMachine>;
  readonly #logic: MessageLogic;
  /** Every message still in the outbox journal, by id. */
  readonly #slots = new Map<string, Slot>();
  /** The newest unacknowledged message of each conversation (the tail of its prev/next chain). */
  readonly #tails = new Map<string, Slot>();
  /**
   * Sends being made durable whose ids the caller chose, by id: only such an id can be sent
   * again (or waited for) before its first send resolves. Generated ids are never tracked
   * here; a map operation per message adds up.
   */
  readonly #enqueuing = new Map<string, { promise: Promise<void>; conversationId: string }>();
  /** The send groups not yet settled, for {@link enqueued}. */
  readonly #openGroups = new Set<SendGroup>();
  /** Sends made since the last microtask, written together as one batch. */
  #sendBatch = new Map<string, SendGroup>();
  /** Status lines made since the last microtask, written together as one batch. */
  #statusBatch = new Map<string, StatusGroup>();
  /** Resolves once every status batch so far is reported: batches report in order. */
  #lastReport: Promise<void> = Promise.resolve();
  /** Resolves once the status lines of every batch so far are written (or failed). */
  #lastWritten: Promise<void> = Promise.resolve();
  /** Messages whose `message` line could not be written: it goes out again before their next status line. */
  readonly #missingLines = new Map<string, MessageRecord>();
  /** Sends waiting for the put under way to finish; they go together in the next one. */
  #toPut: Array<[conversationId: string, group: SendGroup]> = [];
  /** The loop putting sends into the journal, one put at a time, in send order. */
  #putting: Promise<void> | undefined;
  /** Ids waiting for a slot, by send order. */
  readonly #queue = new MinHeap<string>();
  /** Live lifecycle actors: queued with an attempt behind them, in flight, or finishing. */
  readonly #actors = new Map<string, MessageActor>();
  /**
   * Acked messages awaiting their receipt (at most `maxRestingActors`, and at least the last
   * half of that many acked): the context their actor stopped with, restored into a new actor
   * when the receipt comes (a context costs far less memory than a live actor, and thousands
   * rest at a time under load). Inspected actors stay in `#actors` as well.
   */
  readonly #resting: RecentMap<string, MessageContext>;
  /**
   * Status groups made and not yet settled (written, reported, out of the journal): where
   * {@link knows} finds a message whose last line is on its way to disk. Scanned, not indexed
   * by id: a map operation per status line, on the path of every message, would cost more than
   * the rare scan.
   */
  readonly #statusGroups = new Set<StatusGroup>();
  /** Where {@link #persistStatus} puts each status write while a caller collects them (receipt, cancel). */
  #collecting: Array<Promise<void>> | undefined;
  /** Resolves once every status batch so far is written, reported and out of the journal. */
  #lastSettled: Promise<void> = Promise.resolve();
  #ordinal = 0;
  readonly #maxLoaded: number;
  /**
   * A refill reads back at most this many messages: a quarter of a send window (or half of
   * `maxQueuedInMemory`, if less), and starts once at most three times as many wait in memory.
   * Three refills' worth keeps the window full while the next one reads (a quarter window takes
   * a millisecond or two to read, several to send, and the reads carry on through the file:
   * see `OutboxJournal.readSpilled`); more would only wait in memory, where everything held
   * while a queue drains counts about four times over in V8's old generation, whose size it
   * sets, and would live long enough to be promoted there.
   */
  readonly #refill: number;
  /**
   * Queued messages kept in memory while offline: one send window (or half of
   * `maxQueuedInMemory`, if less), the first to go once connected. Keeping only a refill's
   * worth instead raised the RSS reached while a long queue was being written by about a third
   * (100,000 messages, three runs each; measured, not explained) and did not lower the drain's.
   */
  readonly #keptOffline: number;
  /** Between {@link online} and {@link offline}. */
  #connected = false;
  /**
   * No spilled message expires before this (epoch ms; `Infinity` when none can): the sweep
   * looks through the journal for the spilled messages due, and reads back and fails them, only
   * once it has passed. A bound, not a record per message: messages read back since only make
   * it early, and the look-through sets it exactly again. (Holding each spilled message's id and
   * expiry instead cost more memory than the spill saved while a long queue drained.)
   */
  #spilledExpiresFrom = Infinity;
  /** Set while the sweep looks through the journal for expired spilled messages. */
  #expiringSpilled = false;
  /** Journal offset at or before the first spilled line. */
  #spillFrom = 0;
  /**
   * The lowest offset spilled while a read-back was under way (it must not skip past it): the
   * read takes it into {@link #spillFrom} as it ends, or the next read as it starts (a spill
   * landing after one read ended and before its outcome was handled).
   */
  #spillLow: number | undefined;
  #loading: Promise<void> | undefined;
  /**
   * Read-backs run one after another: two at once would split the spilled entries between
   * them, and one that found nothing would look like a damaged journal.
   */
  #reads: Promise<unknown> = Promise.resolve();
  /**
   * Cancels waiting for spilled messages, by id: whichever read-back brings the message into
   * the queue (the cancel's own, or a refill already under way) runs them in the same step,
   * before a dispatch could send it.
   */
  readonly #whenReadBack = new Map<string, Array<() => void>>();
  /** The pause before reading again after a refill failed: doubles from 100 ms to 5 s, 0 once one succeeds. */
  #refillPauseMs = 0;
  #refillTimer: unknown;
  /** Set when spilled messages could not be found in the journal: no more read-backs this run. */
  #spillLost = false;
  /** Exact counts, reported to the outbox machine whenever they change. */
  #queued = 0;
  #inflight = 0;
  #reported = { queued: -1, inflight: -1 };
  #reportScheduled = false;
  #sweepTimer: unknown;
  #stopped = false;
  readonly #clock: Clock;
  /** See {@link #shared}. */
  readonly #names = new Map<string, string>();
  /** The time of the last ack, shared by the acks that carry the same one. */
  #lastAckAt = '';

  constructor(options: OutboxOptions) {
    this.#o = options;
    this.#clock = options.clock ?? REAL_TIME;
    this.#maxLoaded = options.maxQueuedInMemory ?? 10_000;
    this.#refill = Math.max(1, Math.min(Math.floor(this.#maxLoaded / 2), Math.ceil(options.window / 4)));
    this.#keptOffline = Math.max(1, Math.min(Math.floor(this.#maxLoaded / 2), options.window));
    // Inspected actors stay alive while they rest: those forgotten stop then.
    const stopForgotten = (forgotten: ReadonlyMap<string, MessageContext>) => {
      for (const id of forgotten.keys()) {
        this.#actors.get(id)?.stop();
        this.#actors.delete(id);
      }
    };
    this.#resting = new RecentMap(options.maxRestingActors ?? 10_000, options.inspect ? stopForgotten : undefined);
    this.#logic = messageMachine.provide({
      actions: {
        transmit: ({ context, self }) => this.#transmit(context, self),
        persistStatus: ({ context }, { status }) => this.#persistStatus(context, status),
      },
    });
    // A lean actor unless inspected, like the lifecycles: it takes an event per batch of acks.
    this.#machine = createLifecycle(
      outboxMachine.provide({
        // Deferred to a microtask: an action must not drive other actors while its own
        // machine is mid-transition (XState's rule for custom actions).
        actions: {
          dispatch: (_, { count }) => queueMicrotask(() => this.#dispatch(count)),
          abandonInflight: () =>
            queueMicrotask(() => {
              for (const actor of [...this.#actors.values()]) {
                if (actor.getSnapshot().matches('inFlight')) actor.send({ type: 'CONNECTION_LOST' });
              }
            }),
        },
      }),
      { id: 'outbox', input: { window: options.window }, clock: options.clock, inspect: options.inspect },
    );
  }

  /**
   * The journal, which also keeps the queued messages whose entries are only in the file
   * (spilled), each with its ordinal: the one record of which they are.
   */
  get #journal(): OutboxJournal {
    return this.#o.storage.outbox;
  }

  /** The outbox statechart actor, for inspection. */
  get actor(): Lifecycle<typeof outboxMachine> {
    return this.#machine;
  }

  /** Messages not yet acked (queued or in flight). */
  get size(): number {
    return this.#slots.size + this.#journal.spilled;
  }

  /**
   * Loads the journal's messages as queued, in their original order, writes
   * the conversation line of any whose line a crash kept from being written,
   * and starts the draining logic.
   */
  async start(): Promise<void> {
    await this.#reconcile();
    this.#machine.start();
    const journal = this.#journal;
    const beyond: OutboxEntry[] = [];
    for (const entry of journal.entries()) {
      if (beyond.length === 0 && this.#queued < this.#keepLimit()) this.#addSlot(entry);
      else beyond.push(entry);
    }
    // Spilled from the start of the file: read back from there (the journal was compacted on open).
    if (beyond.length > 0 && journal.spill(beyond.map((e) => [e.id, ++this.#ordinal] as const))) {
      this.#spillFrom = 0;
      this.#noteSpilledExpiries(beyond);
    } else {
      for (const entry of beyond) this.#addSlot(entry);
    }
    this.#report();
    // Expired messages must fail even while offline, when nothing dispatches them.
    this.#scheduleSweep();
  }

  /**
   * Makes a new message durable and queues it: first its outbox entry (with
   * the conversation file's current length), then its conversation line.
   * A crash between the two leaves an entry whose line {@link start} writes;
   * the other order could leave a line saying `queued` that nothing sends.
   * `callerId` says the caller chose the id: a second send of it while the
   * first is being made durable joins the first (a generated id cannot come twice).
   */
  enqueue(entry: OutboxEntry, record: MessageRecord, callerId = true): Promise<void> {
    // A second send of an id being enqueued waits for the first instead of enqueuing it twice.
    const running = callerId ? this.#enqueuing.get(entry.id) : undefined;
    if (running) return running.promise;
    // The send order is fixed now, even if concurrent sends reach the disk in another order.
    const ordinal = ++this.#ordinal;
    if (this.#sendBatch.size === 0) queueMicrotask(() => this.#writeSends());
    let group = this.#sendBatch.get(entry.conversationId);
    if (!group) {
      group = { items: [], ...deferred() };
      this.#sendBatch.set(entry.conversationId, group);
      this.#openGroups.add(group);
    }
    group.items.push({ entry, record, ordinal, callerId });
    if (callerId) this.#enqueuing.set(entry.id, { promise: group.promise, conversationId: entry.conversationId });
    return group.promise;
  }

  /** Resolves once no enqueue is in progress (so close does not cut one in half). */
  async enqueued(): Promise<void> {
    await Promise.allSettled([...this.#openGroups].map((g) => g.promise));
  }

  /** Whether a message with this id is in the outbox, on its way in, or has a status on its way to disk. */
  knows(id: string): boolean {
    return this.#slots.has(id) || this.#journal.isSpilled(id) || this.#enqueuing.has(id) || this.#actors.has(id) || this.#resting.has(id) || this.#statusOnItsWay(id);
  }

  #statusOnItsWay(id: string): boolean {
    for (const group of this.#statusGroups) for (const update of group.items) if (update.id === id) return true;
    return false;
  }

  /**
   * Writes the sends of one microtask as a batch, after the batch before it
   * (so queueing follows send order even when one batch waits to open a new
   * conversation file): every outbox entry in one append (each with its
   * conversation file's length before the batch). Once that is durable the
   * messages are queued, and may go out, while each conversation's `message`
   * lines are appended (appended first, so they precede their status lines).
   * A send resolves once both are durable. A history line that fails is
   * reported as an error and written again before the message's next status
   * line (and on start, from the outbox entry); the send still resolves, since
   * the message is durable in the outbox and will be sent: a caller must not
   * send it again.
   */
  #writeSends(): void {
    this.#toPut.push(...this.#sendBatch);
    this.#sendBatch = new Map();
    this.#putting ??= this.#putLoop();
  }

  /** Puts what accumulated, one put at a time (each put carrying every send made while the last was written). */
  async #putLoop(): Promise<void> {
    while (this.#toPut.length > 0) {
      const groups = this.#toPut;
      this.#toPut = [];
      await this.#putSends(groups);
    }
    this.#putting = undefined;
  }

  /** The ordered part of {@link #writeSends}; never rejects (failures settle the sends). */
  async #putSends(groups: ReadonlyArray<[string, SendGroup]>): Promise<void> {
    const { conversations, outbox } = this.#o.storage;
    let at: number;
    try {
      const entries: OutboxEntry[] = [];
      const offsets = new Map<string, number>();
      for (const [conversationId, group] of groups) {
        let offset = offsets.get(conversationId);
        if (offset === undefined) offsets.set(conversationId, (offset = await conversations.scanStart(conversationId)));
        for (const item of group.items) {
          // Set, not spread into a copy: V8 gives each `{ ...entry, offset }` a hidden class of its
          // own (about 300 bytes more per queued message).
          item.entry.offset = offset;
          entries.push(item.entry);
        }
      }
      at = await outbox.put(entries);
    } catch (err) {
      for (const [, group] of groups) this.#settleGroup(group, err);
      return;
    }
    for (const [conversationId, group] of groups) {
      void conversations.append(conversationId, group.items.map((i) => i.record)).then(
        () => this.#settleGroup(group),
        (err: unknown) => {
          for (const { record } of group.items) this.#missingLines.set(record.id, record);
          this.#o.onError(err);
          this.#settleGroup(group);
        },
      );
    }
    // Once anything is spilled, later messages are too: they are read back in order.
    const keep: Slot[] = [];
    const spill: Slot[] = [];
    for (const [, group] of groups) {
      for (const { entry, ordinal } of group.items) {
        const slot: Slot = { entry, ordinal, inflight: false, prev: undefined, next: undefined };
        if (spill.length === 0 && outbox.spilled === 0 && this.#queued + keep.length < this.#keepLimit()) keep.push(slot);
        else spill.push(slot);
      }
    }
    // The journal refuses while it compacts (it rewrites the file from memory): those stay in memory.
    const first = outbox.spilled === 0;
    if (spill.length > 0 && outbox.spill(spill.map((s) => [s.entry.id, s.ordinal] as const))) {
      if (first) {
        // A new run of spilled messages: offsets kept from an earlier one may predate a compaction.
        this.#spillFrom = at;
        this.#spillLow = undefined;
      }
      if (this.#loading) this.#spillLow = Math.min(this.#spillLow ?? at, at);
      this.#noteSpilledExpiries(spill.map((s) => s.entry));
    } else {
      keep.push(...spill);
    }
    for (const slot of keep) this.#link(slot);
    this.#report();
  }

  #settleGroup(group: SendGroup, err?: unknown): void {
    for (const { entry, callerId } of group.items) if (callerId) this.#enqueuing.delete(entry.id);
    this.#openGroups.delete(group);
    if (err === undefined) group.resolve();
    else group.reject(err);
  }

  /** Whether the message is waiting to be sent or in flight (not yet acked or failed). */
  has(id: string): boolean {
    return this.#slots.has(id) || this.#journal.isSpilled(id);
  }

  /** Whether a send of this caller-chosen id is being made durable. */
  enqueuing(id: string): boolean {
    return this.#enqueuing.has(id);
  }

  /**
   * The conversation of the message with this id if it is queued, in flight
   * or being made durable (one waiting only in the journal is looked up there,
   * and stays there: its turn to be read back comes in send order).
   */
  async queuedConversationOf(id: string): Promise<string | undefined> {
    const known = this.#slots.get(id)?.entry.conversationId ?? this.#enqueuing.get(id)?.conversationId;
    if (known !== undefined || !this.#journal.isSpilled(id)) return known;
    const peeked = await this.#journal.peekSpilled(this.#spillFrom, id);
    // Read back into the queue while the peek looked (it then skips the line): the queue has it.
    return peeked?.conversationId ?? this.#slots.get(id)?.entry.conversationId;
  }

  /**
   * Checks the journal's entries against their conversation files, from
   * where each entry's `message` line was to be written: an entry with a
   * status line there already left the outbox (the journal records no such
   * thing: the line does), and an entry without its `message` line lost it
   * to a crash between the two writes of `enqueue`, so it is written now.
   */
  async #reconcile(): Promise<void> {
    const { storage, agentId } = this.#o;
    const byConversation = new Map<string, OutboxEntry[]>();
    for (const entry of storage.outbox.entries()) {
      if (entry.offset === undefined) continue;
      const list = byConversation.get(entry.conversationId);
      if (list) list.push(entry);
      else byConversation.set(entry.conversationId, [entry]);
    }
    for (const [conversationId, entries] of byConversation) {
      const wanted = new Set(entries.map((e) => e.id));
      const open = new Set(wanted);
      const finished: string[] = [];
      const start = Math.min(...entries.map((e) => e.offset!));
      for await (const { value } of storage.conversations.records(conversationId, start)) {
        // The contact's messages may share an id with ours: only an outgoing line is ours.
        if (value.type === 'message') {
          if (value.direction === 'out') wanted.delete(value.id);
        } else if (value.status !== 'queued' && value.status !== 'sending' && open.delete(value.id)) finished.push(value.id);
        if (wanted.size === 0 && open.size === 0) break;
      }
      storage.outbox.finish(finished);
      const missing = entries.filter((e) => wanted.has(e.id));
      if (missing.length === 0) continue;
      await storage.conversations.append(
        conversationId,
        missing.map((e) => ({
          type: 'message' as const,
          id: e.id,
          conversationId,
          direction: 'out' as const,
          from: agentId,
          to: e.to,
          text: e.text,
          ...(e.replyTo === undefined ? {} : { replyTo: e.replyTo }),
          ...(e.meta === undefined ? {} : { meta: e.meta }),
          sentAt: e.sentAt,
          status: 'queued' as const,
        })),
      );
    }
  }

  /** The live lifecycle state of a message in the outbox ('queued' when waiting for a slot). */
  stateOf(id: string): OutgoingStatus | undefined {
    const actor = this.#actors.get(id);
    if (actor) return publicStatus(actor.getSnapshot().value);
    if (this.#resting.has(id)) return 'acked';
    return this.#slots.has(id) || this.#journal.isSpilled(id) ? 'queued' : undefined;
  }

  /**
   * The `acked` update of a message acked and waiting for its receipt, from the state it rests
   * with (its time is the server's): for a wait that comes after the update was reported.
   */
  ackedUpdate(id: string): StatusUpdate | undefined {
    const actor = this.#actors.get(id);
    const context = actor?.getSnapshot().value === 'acked' ? actor.getSnapshot().context : this.#resting.get(id);
    if (context?.seq == null || context.serverAt === null) return undefined;
    return { id, conversationId: context.conversationId, status: 'acked', at: context.serverAt, seq: context.seq, serverAt: context.serverAt };
  }

  online(): void {
    this.#connected = true;
    this.#machine.send({ type: 'ONLINE' });
  }

  offline(): void {
    this.#connected = false;
    this.#machine.send({ type: 'OFFLINE' });
  }

  /**
   * How many queued messages keep their entries in memory: `maxQueuedInMemory` while online
   * (a burst being sent is not spilled and read back), and while offline, when nothing is sent,
   * only {@link #keptOffline}: a long offline queue then holds its ids and little else until the
   * connection returns, and its drain starts with a small live heap.
   */
  #keepLimit(): number {
    return this.#connected ? this.#maxLoaded : this.#keptOffline;
  }

  /** Cancels a message still waiting for a slot; resolves to whether it was cancelled (durably). */
  async cancel(id: string): Promise<boolean> {
    let writes: Array<Promise<void>> | undefined;
    const cancelNow = () => {
      const slot = this.#slots.get(id);
      const existing = this.#actors.get(id);
      if (!slot || slot.inflight || (existing && existing.getSnapshot().value !== 'queued')) return;
      const actor = existing ?? this.#spawn(slot);
      writes = this.#collectWrites(() => actor.send({ type: 'CANCEL' }));
    };
    // A spilled message is cancelled the moment it is read back, by whichever read-back, before a
    // dispatch could send it.
    if (this.#journal.isSpilled(id)) {
      const waiting = this.#whenReadBack.get(id);
      if (waiting) waiting.push(cancelNow);
      else this.#whenReadBack.set(id, [cancelNow]);
      try {
        await this.#readBack(1, new Set([id]), cancelNow);
      } finally {
        const left = this.#whenReadBack.get(id)?.filter((f) => f !== cancelNow);
        if (left?.length) this.#whenReadBack.set(id, left);
        else this.#whenReadBack.delete(id);
      }
    } else {
      cancelNow();
    }
    if (!writes) return false;
    await Promise.all(writes);
    return true;
  }

  /** Fails every queued message whose time to live has run out, spilled ones included (read back first). */
  sweepExpired(now = Date.now()): void {
    for (const slot of this.#slots.values()) this.#expireIfDue(slot, now);
    if (this.#journal.spilled === 0) {
      this.#spilledExpiresFrom = Infinity;
      return;
    }
    if (this.#spilledExpiresFrom <= now && !this.#expiringSpilled) void this.#expireSpilled(now);
  }

  /**
   * Finds the spilled messages that expired by `now` in the journal, then reads them back and
   * fails them, at most `maxQueuedInMemory` at a time. If a read fails, the next sweep looks again.
   */
  async #expireSpilled(now: number): Promise<void> {
    this.#expiringSpilled = true;
    // Messages spilled while the journal is looked through lower the bound themselves.
    const before = this.#spilledExpiresFrom;
    this.#spilledExpiresFrom = Infinity;
    try {
      const { due, earliest } = await this.#journal.spilledExpiries(this.#spillFrom, now);
      this.#spilledExpiresFrom = Math.min(this.#spilledExpiresFrom, earliest);
      if (this.#stopped) return;
      // A refill may have read expired messages back while the journal was looked through: they
      // were no longer spilled for it, nor yet in memory for the check before it.
      for (const slot of this.#slots.values()) this.#expireIfDue(slot, now);
      for (let i = 0; i < due.length && !this.#stopped; i += this.#maxLoaded) {
        const ids = due.slice(i, i + this.#maxLoaded);
        const expireNow = () => {
          for (const id of ids) {
            const slot = this.#slots.get(id);
            if (slot) this.#expireIfDue(slot, now);
          }
        };
        try {
          // Failed as they are read back, before a dispatch could try them.
          await this.#readBack(ids.length, new Set(ids), expireNow);
        } catch (err) {
          this.#spilledExpiresFrom = Math.min(this.#spilledExpiresFrom, now);
          throw err;
        }
      }
    } catch (err) {
      this.#spilledExpiresFrom = Math.min(this.#spilledExpiresFrom, before);
      this.#o.onError(err);
    } finally {
      this.#expiringSpilled = false;
    }
  }

  #expireIfDue(slot: Slot, now: number): void {
    if (slot.inflight || this.#actors.has(slot.entry.id)) return;
    if (slot.entry.expiresAt && Date.parse(slot.entry.expiresAt) <= now) this.#spawn(slot).send({ type: 'EXPIRE' });
  }

  #noteSpilledExpiries(entries: readonly OutboxEntry[]): void {
    let earliest = this.#spilledExpiresFrom;
    for (const e of entries) {
      if (e.expiresAt === undefined) continue;
      const at = Date.parse(e.expiresAt);
      if (at < earliest) earliest = at;
    }
    this.#spilledExpiresFrom = earliest;
  }

  /** An ack for a message in flight. (One for a message back in the queue after a timeout is dropped: its resend gets the same ack.) */
  onAck(frame: AckFrame): void {
    const actor = this.#actors.get(frame.id);
    if (!actor) return;
    // Acks stored in the same millisecond share one time string (each frame parsed its own copy):
    // it stays with the message's status until its receipt, and in the recent statuses after.
    const at = frame.at === this.#lastAckAt ? this.#lastAckAt : (this.#lastAckAt = frame.at);
    actor.send({ type: 'ACK', seq: frame.seq, at });
  }

  onNack(frame: NackFrame): void {
    // The server asked to wait: pause the whole outbox rather than hammer it.
    if (frame.retryable) this.#machine.send({ type: 'THROTTLE', untilMs: Date.now() + (frame.retryAfterMs ?? RETRY_PAUSE_MS) });
    this.#actors.get(frame.id)?.send({ type: 'NACK', code: frame.code, message: frame.message, retryable: frame.retryable });
  }

  /**
   * Applies a receipt: each message moves to `delivered` through its
   * lifecycle (restored from `acked` if its actor is gone). Resolves once the
   * status lines are durable.
   */
  async receipt(items: readonly ReceiptItem[], by: string, at: string): Promise<void> {
    const event = { type: 'RECEIPT', at } as const;
    const writes = this.#collectWrites(() => {
      for (const item of items) {
        // Delivered while waiting in the journal (sent before a restart): it leaves the queue now, so no
        // read-back under way can put it back in line to be sent again.
        this.#journal.forgetSpilled(item.id);
        const actor = this.#actors.get(item.id) ?? this.#spawnIfQueued(item.id);
        // An acked message at rest takes its receipt without an actor, unless inspected.
        if (actor) actor.send(event);
        else if (!this.#finishResting(item, by, event)) this.#restoreAcked(item, by).send(event);
      }
    });
    await Promise.all(writes);
  }

  /** Stops every actor (their state is on disk). */
  stop(): void {
    this.#stopped = true;
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer);
    if (this.#refillTimer !== undefined) this.#clock.clearTimeout(this.#refillTimer);
    for (const actor of this.#actors.values()) actor.stop();
    this.#actors.clear();
    this.#resting.clear();
    this.#machine.stop();
  }

  /**
   * Resolves once every status line made so far is durable (or failed), so a
   * history read after `waitFor: 'acked'` finds the `acked` line.
   */
  async statusLinesWritten(): Promise<void> {
    await Promise.allSettled([...this.#statusBatch.values()].map((g) => g.promise));
    await this.#lastWritten;
  }

  /** Resolves when every status write started so far is durable, reported, and out of the journal. */
  async settled(): Promise<void> {
    for (;;) {
      await Promise.allSettled([...this.#statusBatch.values()].map((g) => g.promise));
      const last = this.#lastSettled;
      await last;
      if (last === this.#lastSettled && this.#statusBatch.size === 0) return;
    }
  }

  /**
   * Runs `send` (events to lifecycles) and returns the status writes its
   * actions made: lifecycles handle an event before `send` returns, actions
   * included. A message whose event wrote nothing has nothing to wait for:
   * its earlier lines precede any later one in its conversation file.
   */
  #collectWrites(send: () => void): Array<Promise<void>> {
    const writes: Array<Promise<void>> = [];
    const outer = this.#collecting;
    this.#collecting = writes;
    try {
      send();
    } finally {
      this.#collecting = outer;
    }
    outer?.push(...writes);
    return writes;
  }

  #scheduleSweep(): void {
    if (this.#stopped) return;
    this.#sweepTimer = this.#clock.setTimeout(() => {
      this.sweepExpired();
      this.#scheduleSweep();
    }, SWEEP_INTERVAL_MS);
  }

  #addSlot(entry: OutboxEntry): void {
    this.#link({ entry, ordinal: ++this.#ordinal, inflight: false, prev: undefined, next: undefined });
  }

  /** The one copy of a conversation or agent id kept for every message that names it (up to 1,024 ids, then anew). */
  #shared(name: string): string {
    const known = this.#names.get(name);
    if (known !== undefined) return known;
    if (this.#names.size >= 1024) this.#names.clear();
    this.#names.set(name, name);
    return name;
  }

  /** Queues a slot and links it into its conversation's chain, in send order. */
  #link(slot: Slot): void {
    // One string per conversation and recipient, not a copy per message (each read-back line and
    // each send makes its own): the message's state, status and recent statuses hold them.
    const { entry } = slot;
    entry.conversationId = this.#shared(entry.conversationId);
    entry.to = this.#shared(entry.to);
    this.#slots.set(slot.entry.id, slot);
    this.#queue.push(slot.ordinal, slot.entry.id);
    this.#queued++;
    const cid = slot.entry.conversationId;
    let prev = this.#tails.get(cid);
    let next: Slot | undefined;
    // Concurrent sends can reach here out of order: walk back to this slot's place (rarely more than a step).
    while (prev && prev.ordinal > slot.ordinal) {
      next = prev;
      prev = prev.prev;
    }
    slot.prev = prev;
    slot.next = next;
    if (prev) prev.next = slot;
    if (next) next.prev = slot;
    else this.#tails.set(cid, slot);
  }

  /** Removes a slot that left the outbox (acked, failed, cancelled...). */
  #unlink(slot: Slot): void {
    this.#slots.delete(slot.entry.id);
    if (slot.prev) slot.prev.next = slot.next;
    if (slot.next) slot.next.prev = slot.prev;
    else if (slot.prev) this.#tails.set(slot.entry.conversationId, slot.prev);
    else this.#tails.delete(slot.entry.conversationId);
    slot.prev = slot.next = undefined;
  }

  /**
   * Tells the outbox machine the exact counts when they changed: once per
   * microtask, however many messages moved in between (a burst of acks is
   * one report, not a thousand), with the counts as they are then.
   */
  #report(): void {
    if (this.#reportScheduled) return;
    this.#reportScheduled = true;
    queueMicrotask(() => {
      this.#reportScheduled = false;
      if (this.#stopped) return;
      // Whatever emptied the queue in memory (sends, cancels, expiries), spilled messages refill it.
      this.#loadIfLow();
      if (this.#reported.queued === this.#queued && this.#reported.inflight === this.#inflight) return;
      this.#reported = { queued: this.#queued, inflight: this.#inflight };
      this.#machine.send({ type: 'QUEUE_CHANGED', queued: this.#queued, inflight: this.#inflight });
    });
  }

  /**
   * Hands up to `count` of the oldest waiting messages to their lifecycle.
   * The window is enforced here, on the exact counts: a dispatch planned on
   * counts that changed since (it runs a microtask later) sends fewer.
   */
  #dispatch(count: number): void {
    let room = Math.min(count, this.#o.window - this.#inflight);
    while (room > 0) {
      const id = this.#queue.pop();
      if (id === undefined) break;
      const slot = this.#slots.get(id);
      // Entries that left the queue otherwise (cancelled, expired) are skipped.
      if (!slot || slot.inflight) continue;
      const actor = this.#actors.get(id) ?? this.#spawn(slot);
      slot.inflight = true;
      this.#queued--;
      this.#inflight++;
      room--;
      actor.send({ type: 'DISPATCH' });
    }
    this.#report();
    this.#loadIfLow();
  }

  /** Starts reading spilled messages back once few wait in memory (see {@link #refill}). */
  #loadIfLow(): void {
    if (this.#loading || this.#stopped || this.#spillLost || this.#journal.spilled === 0 || this.#queued > 3 * this.#refill) return;
    // No room (as many queued as may be kept in memory now): a read of none would find nothing.
    const room = Math.min(this.#refill, this.#keepLimit() - this.#queued);
    if (room < 1) return;
    this.#loading = this.#readBack(room).then(
      ({ progress }) => {
        this.#loading = undefined;
        this.#refillPauseMs = 0;
        if (this.#stopped) return;
        // A put spilled since this read looked (after it, before this runs) is there to be found.
        if (progress || this.#spillLow !== undefined) return this.#loadIfLow();
        // Nothing left to find (a sweep, a cancel or receipts took them first): nothing is lost.
        if (this.#journal.spilled === 0) return;
        // Nothing found: the file does not hold them where expected (damaged?). Reading it again
        // and again would not help; the next start replays the whole journal.
        this.#spillLost = true;
        this.#o.onError(new IMClientError('STORAGE_IO', `${this.#journal.spilled} queued messages could not be read back from outbox.jsonl; they are sent after the client starts again`));
      },
      (err: unknown) => {
        this.#loading = undefined;
        this.#o.onError(err);
        if (this.#stopped) return;
        // The messages stay spilled; reading again later (the disk may recover) keeps the queue
        // moving even when nothing else happens to start a refill (no send, no ack, no reconnect).
        this.#refillPauseMs = Math.min(REFILL_RETRY_MAX_MS, Math.max(REFILL_RETRY_MS, 2 * this.#refillPauseMs));
        this.#refillTimer ??= this.#clock.setTimeout(() => {
          this.#refillTimer = undefined;
          this.#loadIfLow();
        }, this.#refillPauseMs);
      },
    );
  }

  /**
   * Reads up to `limit` spilled messages (or only those in `only`) back into the queue, after
   * any read-back before it. `andThen` runs as soon as they are in the queue, before anything
   * else can dispatch them (a cancel must act before a send).
   */
  #readBack(limit: number, only?: ReadonlySet<string>, andThen?: () => void): Promise<ReadBack> {
    const read = this.#reads.then(() => this.#readBackNow(limit, only, andThen));
    this.#reads = read.catch(() => {});
    return read;
  }

  async #readBackNow(limit: number, only?: ReadonlySet<string>, andThen?: () => void): Promise<ReadBack> {
    if (this.#stopped) return NO_READ;
    if (only) {
      // Those the refill read back meanwhile are not looked for: a read that cannot reach its
      // limit scans the journal to its end. (`andThen` still runs: they are in the queue.)
      const still = [...only].filter((id) => this.#journal.isSpilled(id));
      if (still.length === 0) {
        andThen?.();
        return NO_READ;
      }
      only = new Set(still);
      limit = Math.min(limit, still.length);
    }
    if (this.#journal.spilled === 0) return NO_READ;
    if (!only && this.#spillLow !== undefined) {
      // Spilled after the last read ended: this read starts no later than that.
      this.#spillFrom = Math.min(this.#spillFrom, this.#spillLow);
      this.#spillLow = undefined;
    }
    const { found, next } = await this.#journal.readSpilled(this.#spillFrom, limit, only);
    if (this.#stopped) return NO_READ;
    // Out of the journal's spilled set and into the queue in one step: no moment where the message is neither.
    const entries = this.#journal.unspill(found);
    for (const { entry, order } of entries) this.#link({ entry, ordinal: order, inflight: false, prev: undefined, next: undefined });
    if (this.#whenReadBack.size > 0) {
      for (const { entry } of entries) {
        const waiting = this.#whenReadBack.get(entry.id);
        if (!waiting) continue;
        this.#whenReadBack.delete(entry.id);
        for (const act of waiting) act();
      }
    }
    andThen?.();
    const spilledMeanwhile = !only && this.#spillLow !== undefined;
    if (!only) {
      this.#spillFrom = Math.min(next, this.#spillLow ?? next);
      this.#spillLow = undefined;
    }
    this.#report();
    return { read: entries.length, progress: found.length > 0 || spilledMeanwhile };
  }

  #spawn(slot: Slot): MessageActor {
    const e = slot.entry;
    const actor = createLifecycle(this.#logic, {
      id: `message:${e.id}`,
      input: {
        id: e.id,
        conversationId: e.conversationId,
        to: e.to,
        maxAttempts: this.#o.maxAttempts,
        ackTimeoutMs: this.#o.ackTimeoutMs,
        expiresAt: e.expiresAt ? Date.parse(e.expiresAt) : null,
      },
      clock: this.#o.clock,
      inspect: this.#o.inspect,
    });
    this.#watch(e.id, actor);
    return actor;
  }

  #spawnIfQueued(id: string): MessageActor | undefined {
    const slot = this.#slots.get(id);
    return slot ? this.#spawn(slot) : undefined;
  }

  /**
   * Recreates the lifecycle of a message that rests in `acked`: from the
   * context it rested with, or (acked before a restart, or long ago) from
   * what the receipt tells.
   */
  #restoreAcked(item: ReceiptItem, to: string): MessageActor {
    const actor = createLifecycle(this.#logic, {
      id: `message:${item.id}`,
      restore: { value: 'acked', context: this.#resting.get(item.id) ?? this.#contextFromReceipt(item, to) },
      clock: this.#o.clock,
      inspect: this.#o.inspect,
    });
    this.#resting.delete(item.id);
    this.#watch(item.id, actor);
    return actor;
  }

  /**
   * Ends the lifecycle of a message at rest in `acked` with `event` (its
   * receipt) from the compiled machine, without an actor (its actions write
   * the status line as an actor's would); false when an actor is needed.
   */
  #finishResting(item: ReceiptItem, to: string, event: { type: 'RECEIPT'; at: string }): boolean {
    if (this.#o.inspect) return false;
    const context = this.#resting.get(item.id) ?? this.#contextFromReceipt(item, to);
    if (finishLifecycle(this.#logic, { value: 'acked', context }, event, undefined) === undefined) return false;
    this.#resting.delete(item.id);
    return true;
  }

  /** The context of an acked message no longer resting in memory (acked before a restart, or long ago): what its receipt tells. */
  #contextFromReceipt(item: ReceiptItem, to: string): MessageContext {
    return {
      id: item.id,
      conversationId: item.conversationId,
      to,
      attempts: 0,
      failures: 0,
      maxAttempts: this.#o.maxAttempts,
      ackTimeoutMs: this.#o.ackTimeoutMs,
      expiresAt: null,
      ackDeadline: null,
      seq: null,
      serverAt: null,
      deliveredAt: null,
      error: null,
    };
  }

  /** Starts an actor and follows its state: window accounting, requeueing, resting, cleanup. */
  #watch(id: string, actor: MessageActor): void {
    this.#actors.set(id, actor);
    actor.subscribe(this.#observe);
    actor.start();
  }

  /** The one observer of every lifecycle (a closure per actor would live as long as it). */
  readonly #observe = (snapshot: MessageSnapshot): void => this.#onSnapshot(snapshot.context.id, snapshot);

  #onSnapshot(id: string, snapshot: MessageSnapshot): void {
    const state = snapshot.value;
    const inFlight = snapshot.matches('inFlight');
    const waiting = state === 'queued' || inFlight;
    const slot = this.#slots.get(id);
    if (slot) {
      if (slot.inflight && !inFlight) {
        slot.inflight = false;
        this.#inflight--;
        if (state === 'queued') {
          // Back to the queue (lost connection, timeout, retryable nack): it goes first again.
          // Its actor stays alive, keeping its attempt count; at most a window of them.
          this.#queue.push(slot.ordinal, id);
          this.#queued++;
        }
      } else if (!slot.inflight && !waiting) {
        // Left the queue without a dispatch: cancelled, expired, or a receipt/ack overtook it.
        this.#queued--;
      }
      if (!waiting) this.#unlink(slot);
      this.#report();
      // Just acked (not restored from rest for a receipt, which has no slot): rest until the receipt.
      if (state === 'acked') return this.#rest(id, snapshot.context);
    }
    if (snapshot.status === 'done') {
      this.#actors.delete(id);
      this.#resting.delete(id);
    }
  }

  /**
   * Puts an acked message to rest until its receipt: its context stays, its
   * actor stops. An inspected actor stays alive instead (up to the same cap),
   * so an inspector sees each lifecycle as one actor from start to end.
   */
  #rest(id: string, context: MessageContext): void {
    if (!this.#o.inspect) {
      this.#actors.get(id)?.stop();
      this.#actors.delete(id);
    }
    this.#resting.set(id, context);
  }

  #transmit(context: MessageContext, self: { send: (e: { type: 'SENT' }) => void }): void {
    const slot = this.#slots.get(context.id);
    if (!slot) return;
    const e = slot.entry;
    // Encoded from the entry's fields (no frame object: this runs once per message sent). The
    // server stores it only after its predecessor, if that one is not acked yet (`after`).
    const frame = sendFrameTextOf(e.id, e.to, e.text, e.conversationId, e.replyTo, e.meta, e.sentAt, slot.prev?.entry.id);
    // A message that cannot be written stays in `sending`: the socket is gone or being dropped, so
    // the connection leaves `online` and the outbox's OFFLINE returns every in-flight message to
    // the queue. Requeueing it here would redispatch it at once, in a loop, while still "online".
    this.#o.link.sendOrFail(frame, () => self.send(SENT));
  }

  /**
   * Queues the status line for the next batch ({@link #writeStatuses}); a
   * caller collecting writes ({@link #collectWrites}) gets its promise.
   */
  #persistStatus(context: MessageContext, status: StatusUpdate['status']): void {
    const at = isoNow();
    const { id, conversationId, seq, serverAt } = context;
    let update: StatusUpdate;
    if (seq !== null && serverAt !== null && context.error === null && (status === 'acked' || status === 'delivered')) {
      // The common two (a message acked, then delivered) made whole, in one shape each: fields
      // added afterwards would each cost the object a second, out-of-object store, and thousands
      // of these stay in memory a while (status waiters' recent updates).
      update =
        status === 'acked'
          ? { id, conversationId, status, at, seq, serverAt }
          : { id, conversationId, status, at, seq, serverAt, deliveredAt: context.deliveredAt ?? at };
    } else {
      update = { id, conversationId, status, at };
      if (seq !== null) update.seq = seq;
      if (serverAt !== null) update.serverAt = serverAt;
      if (status === 'delivered') update.deliveredAt = context.deliveredAt ?? at;
      if (context.error !== null) update.error = context.error;
    }
    if (this.#statusBatch.size === 0) queueMicrotask(() => this.#writeStatuses());
    let group = this.#statusBatch.get(context.conversationId);
    if (!group) {
      group = { items: [], ...deferred() };
      // Awaited by whoever needs it (receipts, cancel, close); never an unhandled rejection.
      group.promise.catch(() => {});
      this.#statusBatch.set(context.conversationId, group);
      this.#statusGroups.add(group);
    }
    // Its line is written from it in the next microtask: nothing changes an update once made.
    group.items.push(update);
    this.#collecting?.push(group.promise);
    if (status === 'acked') this.#o.onAcked?.(update);
  }

  /**
   * Writes the status lines of one microtask as a batch: one append per
   * conversation; once a line is durable its update is reported and its
   * message leaves the outbox (in memory: the durable line is the record
   * that it left). Batches write concurrently but report in order, so a
   * message's `acked` is always reported before its `delivered`.
   * A group's promise settles once both are done.
   */
  #writeStatuses(): void {
    const groups = [...this.#statusBatch.entries()];
    this.#statusBatch = new Map();
    const { conversations, outbox } = this.#o.storage;
    const durable: StatusUpdate[] = [];
    const failed = new Map<StatusGroup, unknown>();
    // Never rejects: a failed append is reported, and its messages stay in the outbox.
    const written = Promise.all(
      groups.map(([conversationId, group]) => {
        const lines: string[] = [];
        try {
          for (const update of group.items) {
            // A message line that could not be written goes first, so history never lacks it.
            const missing = this.#missingLines.get(update.id);
            if (missing) lines.push(conversationLine(missing));
            lines.push(statusLineOf(update));
          }
        } catch (err) {
          // A line that cannot be encoded fails like a write instead of throwing out of this microtask
          // (what comes in through the API cannot: its metadata is a JSON copy, see `sendMessage`).
          failed.set(group, err);
          this.#o.onError(err);
          return undefined;
        }
        return conversations.appendLines(conversationId, lines).then(
          () => {
            for (const update of group.items) this.#missingLines.delete(update.id);
            durable.push(...group.items);
          },
          (err: unknown) => {
            failed.set(group, err);
            this.#o.onError(err);
          },
        );
      }),
    ).then(() => {});
    const previous = this.#lastWritten;
    this.#lastWritten = written.then(() => previous);
    // Only once its status line is durable may a message leave the outbox: a crash before it resends
    // it, and the server answers with the same ack. The line itself records that it left.
    const left = written.then(() => {
      // A receipt can finish a message still spilled (sent before a restart, receipted since).
      outbox.finish(durable.map((update) => update.id));
    });
    // Reported once the status line is durable, in batch order.
    const report = Promise.all([this.#lastReport, written])
      .then(() => {
        for (const update of durable) this.#o.onStatus(update);
      })
      .catch((err: unknown) => this.#o.onError(err));
    this.#lastReport = report;
    const settledHere = Promise.all([report, left]).then(() => {
      for (const [, group] of groups) {
        this.#statusGroups.delete(group);
        if (failed.has(group)) group.reject(failed.get(group));
        else group.resolve();
      }
    });
    this.#lastSettled = Promise.allSettled([this.#lastSettled, settledHere]).then(() => {});
  }
}

const statusIso = isoFormatter();
/** The time as an ISO string, formatted once per millisecond (a burst of statuses shares it). */
function isoNow(): string {
  return statusIso(Date.now());
}

/** The event of a frame written (events are read, never changed: one serves every message). */
const SENT = Object.freeze({ type: 'SENT' as const });

/** The status line recording an update (a failure's reason is its error). */
function statusLineOf(u: StatusUpdate): string {
  return statusLine(u.id, u.status, u.at, u.seq, u.serverAt, u.error);
}

/** The public status of a lifecycle state. */
function publicStatus(state: MessageSnapshot['value']): OutgoingStatus {
  return typeof state === 'object' ? 'sending' : state;
}
