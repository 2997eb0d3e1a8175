import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import stableStringify from 'fast-json-stable-stringify';
import { MAX_RECEIPT_ITEMS } from '../constants.js';
import type { NackCode } from '../protocol/codes.js';
import { RETRYABLE_NACK_CODES } from '../protocol/codes.js';
import { directConversationId, isDirectConversationOf } from '../protocol/ids.js';
import type { WireMessage } from '../protocol/message.js';
import type { AckFrame, NackFrame, SendFrame } from '../protocol/send.js';
import { deferred, type Deferred } from '../util/deferred.js';
import { isoFormatter } from '../util/isoTime.js';
import { utf8LengthIfOver } from '../util/utf8.js';
import type { Authenticator } from './auth.js';
import type { ServerLogger } from './options.js';
import { InboxFullError, type AcceptedMessage, type InboxStore, type ReceiptBody } from './store/InboxStore.js';

const serverIso = isoFormatter();

/** The answer to a send, or its append under way. */
type Decision = AckFrame | NackFrame | { append: Promise<AcceptedMessage> };

/** A send admitted for storing, with the message the server stores for it. */
interface Admitted {
  admit: WireMessage;
}

/** The messages of one batch of sends to one recipient: one append, settled once they are answered. */
interface AppendGroup extends Deferred {
  frames: SendFrame[];
  items: Array<{ message: WireMessage; digest: string }>;
}

/** What the server suggests waiting after a full inbox or a storage failure. */
const RETRY_AFTER_MS = 1000;
/** What it suggests waiting before resending messages in order. */
const OUT_OF_ORDER_RETRY_MS = 50;

/** What the exchange needs from the server. */
export interface ExchangeOptions {
  store: InboxStore;
  auth: Authenticator;
  maxMessageBytes: number;
  maxInboxEntries: number;
  log: ServerLogger;
  /** Called when an agent's inbox has something new to deliver. */
  notify(agentId: string): void;
  now?: () => number;
}

/**
 * The server's message routing, independent of sockets: validates a `send`,
 * deduplicates it by (sender, id), stores it in the recipient's inbox and
 * answers ack or nack; turns a recipient's `deliver_ack` into receipts in the
 * senders' inboxes. Sessions call it; it calls `notify` to wake deliveries.
 */
export class Exchange {
  readonly #o: ExchangeOptions;
  readonly #now: () => number;
  /**
   * Sends being stored, by sender then id (each settles, never rejects, once
   * its send is answered): a resend racing the first copy waits for it, then
   * is decided like any resend, which the dedupe index answers by then.
   */
  readonly #inflight = new Map<string, Map<string, Promise<unknown>>>();
  /** Acks being processed per agent, so receipts are generated once per acknowledged entry. */
  readonly #acking = new Map<string, Promise<void>>();
  /** The last pending decision per sender and conversation. */
  readonly #decisions = new Map<string, Promise<void>>();
  /** Messages admitted (being stored) and not yet findable by findAccepted, by sender then id. */
  readonly #admitted = new Map<string, Set<string>>();

  /** The store's synchronous lookup, when it has one. */
  readonly #findNow: ((from: string, id: string) => AcceptedMessage | undefined) | undefined;

  constructor(options: ExchangeOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#findNow = options.store.findAcceptedNow?.bind(options.store);
  }

  /** Resolves once no send or delivery ack is being processed (for shutdown). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0 || this.#acking.size > 0) {
      const pending: Array<Promise<unknown>> = [...this.#acking.values()];
      for (const sends of this.#inflight.values()) pending.push(...sends.values());
      await Promise.allSettled(pending);
    }
  }

  /**
   * Handles the `send` frames of one WebSocket message from `from`, calling
   * `answer` (which must not throw) once per frame with its ack or nack, as
   * soon as it is known. With a store that answers lookups at once, every
   * frame is decided now, in order, and the messages to each recipient are
   * appended together: one write and one wait for the batch, not one per
   * message. Resolves once every frame is answered.
   */
  sendBatch(from: string, frames: readonly SendFrame[], answer: (frame: AckFrame | NackFrame) => void): Promise<void> {
    const findNow = this.#findNow;
    if (findNow === undefined || this.#decisions.size > 0) {
      // Decisions that wait for the store, or for earlier ones: one send at a time.
      return Promise.all(frames.map((frame) => this.send(from, frame).then(answer))).then(() => {});
    }
    const waits: Array<Promise<void>> = [];
    const groups = new Map<string, AppendGroup>();
    try {
      this.#decideBatch(from, frames, findNow, answer, waits, groups);
    } catch (err) {
      // Nothing of this batch is stored: what was admitted is forgotten, and resends of it are not left waiting.
      for (const group of groups.values()) this.#settle(from, group);
      return Promise.reject(err);
    }
    for (const [to, group] of groups) waits.push(this.#store(from, to, group, answer));
    return waits.length === 0 ? Promise.resolve() : Promise.all(waits).then(() => {});
  }

  /**
   * The decisions of {@link sendBatch}, in order: answers given now (or once
   * a racing first copy is answered, in `waits`), admitted messages added to
   * their recipient's group in `groups`.
   */
  #decideBatch(
    from: string,
    frames: readonly SendFrame[],
    findNow: (from: string, id: string) => AcceptedMessage | undefined,
    answer: (frame: AckFrame | NackFrame) => void,
    waits: Array<Promise<void>>,
    groups: Map<string, AppendGroup>,
  ): void {
    const isStored = (id: string) => findNow(from, id) !== undefined;
    for (const frame of frames) {
      const conversationId = this.#check(from, frame);
      if (typeof conversationId !== 'string') {
        answer(conversationId);
        continue;
      }
      const racing = this.#inflight.get(from)?.get(frame.id);
      if (racing) {
        waits.push(racing.then(() => this.send(from, frame)).then(answer));
        continue;
      }
      const digest = contentDigest(frame.to, conversationId, frame);
      const decision = this.#decideWith(from, frame, conversationId, digest, findNow(from, frame.id), isStored);
      if (!('admit' in decision)) {
        answer(decision);
        continue;
      }
      let group = groups.get(frame.to);
      if (!group) groups.set(frame.to, (group = { frames: [], items: [], ...deferred() }));
      group.frames.push(frame);
      group.items.push({ message: decision.admit, digest });
      // A copy of it later in this batch, or in the next, waits for this one.
      this.#track(from, frame.id, group.promise);
    }
  }

  /**
   * A group's sends are answered, or will never be stored (its batch failed
   * before the append): they leave the admitted and in-flight maps, and
   * resends waiting for them go on.
   */
  #settle(from: string, group: AppendGroup): void {
    for (const frame of group.frames) {
      this.#release(from, frame.id);
      this.#untrack(from, frame.id, group.promise);
    }
    group.resolve();
  }

  /** Handles a `send` from `from`; resolves with the frame to answer it with. */
  async send(from: string, frame: SendFrame): Promise<AckFrame | NackFrame> {
    const conversationId = this.#check(from, frame);
    if (typeof conversationId !== 'string') return conversationId;
    const racing = this.#inflight.get(from)?.get(frame.id);
    if (racing) {
      await racing;
      return this.send(from, frame);
    }
    const digest = contentDigest(frame.to, conversationId, frame);
    // Registered before the first await, so a resend arriving meanwhile finds it.
    const work = this.#accept(from, frame, conversationId, digest);
    const settled = work.then(
      () => {},
      () => {},
    );
    this.#track(from, frame.id, settled);
    try {
      return await work;
    } finally {
      this.#untrack(from, frame.id, settled);
    }
  }

  /**
   * Handles a cumulative `deliver_ack` from `agentId`: receipts for the
   * messages it covers go to their senders first, then the ack is recorded.
   * (A crash in between repeats receipts, never loses them.)
   */
  deliverAck(agentId: string, upTo: number): Promise<void> {
    const previous = this.#acking.get(agentId) ?? Promise.resolve();
    const next = previous.then(() => this.#deliverAck(agentId, upTo));
    const tail = next.catch(() => {});
    this.#acking.set(agentId, tail);
    void tail.then(() => {
      if (this.#acking.get(agentId) === tail) this.#acking.delete(agentId);
    });
    return next;
  }

  /** The send's conversation id, or the nack of a send that cannot be stored at all (too large, no such recipient, a wrong conversation). */
  #check(from: string, frame: SendFrame): string | NackFrame {
    const max = this.#o.maxMessageBytes;
    const metaBytes = frame.meta ? Buffer.byteLength(JSON.stringify(frame.meta)) : 0;
    const bytes = utf8LengthIfOver(frame.text, max - metaBytes) + metaBytes;
    if (bytes > max) return nack(frame.id, 'too_large', `message is ${bytes} bytes; the limit is ${max}`);
    if (!this.#o.auth.isAddressable(frame.to)) {
      return nack(frame.id, 'unknown_recipient', `no agent "${frame.to}" on this server`);
    }
    const conversationId = frame.conversationId;
    if (conversationId === undefined) return directConversationId(from, frame.to);
    if (conversationId.includes('+') && !isDirectConversationOf(conversationId, from, frame.to)) {
      const direct = directConversationId(from, frame.to);
      return nack(frame.id, 'invalid_message', `conversation id "${conversationId}" is a direct conversation of other agents; use "${direct}" or an id without "+"`);
    }
    return conversationId;
  }

  /** Appends one batch's messages to `to` and answers their sends. Never rejects. */
  async #store(from: string, to: string, group: AppendGroup, answer: (frame: AckFrame | NackFrame) => void): Promise<void> {
    const { frames } = group;
    try {
      const accepted = await this.#o.store.appendMessages(to, group.items, { maxBacklog: this.#o.maxInboxEntries });
      if (accepted[0]) this.#o.notify(to);
      for (let i = 0; i < frames.length; i++) {
        const a = accepted[i];
        answer(a ? { type: 'ack', id: frames[i]!.id, seq: a.seq, at: a.at } : inboxFull(frames[i]!.id, to, this.#o.maxInboxEntries));
      }
    } catch (err) {
      this.#o.log({ level: 'error', event: 'store_failed', to, error: (err as Error).message });
      for (const frame of frames) answer(storeFailed(frame.id));
    } finally {
      // Stored messages are found by findAccepted from now on.
      this.#settle(from, group);
    }
  }

  /**
   * Decides, then stores. Decisions for one sender's conversation are taken
   * one after another (each waits for the previous decision, not for its
   * write), so `after` is checked against a settled answer while appends
   * still share fsyncs.
   */
  async #accept(from: string, frame: SendFrame, conversationId: string, digest: string): Promise<AckFrame | NackFrame> {
    const findNow = this.#findNow;
    // The chain key is built only when some decision is pending (never with a store that answers at once).
    const chainKey = this.#decisions.size === 0 && findNow ? undefined : `${from}\n${conversationId}`;
    const previous = chainKey === undefined ? undefined : this.#decisions.get(chainKey);
    let outcome: Decision;
    if (chainKey === undefined || (previous === undefined && findNow)) {
      // A store that answers at once: decided now, so no later decision can overtake this one.
      outcome = this.#appendIfAdmitted(frame, digest, this.#decideWith(from, frame, conversationId, digest, findNow!(from, frame.id), (id) => findNow!(from, id) !== undefined));
    } else {
      const decision = (previous ?? Promise.resolve()).then(() => this.#decide(from, frame, conversationId, digest));
      const settled = decision.then(
        () => {},
        () => {},
      );
      this.#decisions.set(chainKey, settled);
      void settled.then(() => {
        if (this.#decisions.get(chainKey) === settled) this.#decisions.delete(chainKey);
      });
      outcome = await decision;
    }
    if (!('append' in outcome)) return outcome;
    try {
      const stored = await outcome.append;
      this.#o.notify(frame.to);
      return { type: 'ack', id: frame.id, seq: stored.seq, at: stored.at };
    } catch (err) {
      if (err instanceof InboxFullError) return inboxFull(frame.id, frame.to, this.#o.maxInboxEntries);
      this.#o.log({ level: 'error', event: 'store_failed', to: frame.to, error: (err as Error).message });
      return storeFailed(frame.id);
    } finally {
      this.#release(from, frame.id);
    }
  }

  /**
   * The answer to a send (a duplicate, a conflict, an order problem), or its
   * append under way (wrapped, so that resolving the decision does not wait for it).
   */
  async #decide(from: string, frame: SendFrame, conversationId: string, digest: string): Promise<Decision> {
    const accepted = await this.#o.store.findAccepted(from, frame.id);
    // The message it must follow is stored, or admitted by an earlier decision of this conversation.
    const afterKnown =
      frame.after === undefined || accepted !== undefined || this.#isAdmitted(from, frame.after) || (await this.#o.store.findAccepted(from, frame.after)) !== undefined;
    return this.#appendIfAdmitted(frame, digest, this.#decideWith(from, frame, conversationId, digest, accepted, () => afterKnown));
  }

  /** Starts storing an admitted message on its own (one send at a time). */
  #appendIfAdmitted(frame: SendFrame, digest: string, decision: AckFrame | NackFrame | Admitted): Decision {
    if (!('admit' in decision)) return decision;
    const append = this.#o.store.appendMessage(decision.admit, digest, { maxBacklog: this.#o.maxInboxEntries });
    // Handled by #accept; this keeps an early rejection from being reported as unhandled.
    append.catch(() => {});
    return { append };
  }

  /**
   * The decision, given what the dedupe index says of this message and of the
   * one it must follow: an answer, or the message to store (admitted: a later
   * send that must follow it finds it admitted until it is stored).
   */
  #decideWith(
    from: string,
    frame: SendFrame,
    conversationId: string,
    digest: string,
    accepted: AcceptedMessage | undefined,
    isStored: (id: string) => boolean,
  ): AckFrame | NackFrame | Admitted {
    if (accepted) {
      return accepted.digest === digest ? { type: 'ack', id: frame.id, seq: accepted.seq, at: accepted.at } : conflict(frame.id);
    }
    if (frame.after !== undefined && !this.#isAdmitted(from, frame.after) && !isStored(frame.after)) {
      return nack(frame.id, 'out_of_order', `message ${frame.after} must be stored first; send it again, then this one`, OUT_OF_ORDER_RETRY_MS);
    }
    const serverAt = serverIso(this.#now());
    // Set field by field: spreads of optional parts allocate and leave a slower shape.
    const message: WireMessage = { id: frame.id, from, to: frame.to, conversationId, text: frame.text, sentAt: frame.sentAt ?? serverAt, serverAt };
    if (frame.replyTo !== undefined) message.replyTo = frame.replyTo;
    if (frame.meta !== undefined) message.meta = frame.meta;
    let admitted = this.#admitted.get(from);
    if (!admitted) this.#admitted.set(from, (admitted = new Set()));
    admitted.add(frame.id);
    return { admit: message };
  }

  #isAdmitted(from: string, id: string): boolean {
    return this.#admitted.get(from)?.has(id) ?? false;
  }

  /** The message was stored (or could not be): from now on the dedupe index answers for it. */
  #release(from: string, id: string): void {
    const admitted = this.#admitted.get(from);
    if (admitted?.delete(id) && admitted.size === 0) this.#admitted.delete(from);
  }

  #track(from: string, id: string, settled: Promise<unknown>): void {
    let sends = this.#inflight.get(from);
    if (!sends) this.#inflight.set(from, (sends = new Map()));
    sends.set(id, settled);
  }

  #untrack(from: string, id: string, settled: Promise<unknown>): void {
    const sends = this.#inflight.get(from);
    if (sends?.get(id) !== settled) return;
    sends.delete(id);
    if (sends.size === 0) this.#inflight.delete(from);
  }

  async #deliverAck(agentId: string, upTo: number): Promise<void> {
    const covered = await this.#o.store.coveredBy(agentId, upTo);
    const bySender = new Map<string, ReceiptBody['messages']>();
    for (const e of covered) {
      if (e.kind !== 'message') continue;
      const list = bySender.get(e.from);
      if (list) list.push({ id: e.id, conversationId: e.conversationId });
      else bySender.set(e.from, [{ id: e.id, conversationId: e.conversationId }]);
    }
    const at = new Date(this.#now()).toISOString();
    const appends: Array<Promise<unknown>> = [];
    for (const [sender, items] of bySender) {
      for (let i = 0; i < items.length; i += MAX_RECEIPT_ITEMS) {
        appends.push(this.#o.store.appendReceipt(sender, { by: agentId, at, messages: items.slice(i, i + MAX_RECEIPT_ITEMS) }));
      }
    }
    await Promise.all(appends);
    await this.#o.store.ack(agentId, upTo);
    // Senders hear of the delivery only once the recipient's ack is recorded too.
    for (const sender of bySender.keys()) this.#o.notify(sender);
  }
}

function nack(id: string, code: NackCode, message: string, retryAfterMs?: number): NackFrame {
  return {
    type: 'nack',
    id,
    code,
    message,
    retryable: RETRYABLE_NACK_CODES.has(code),
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  };
}

/** The nack of a send refused by the rate limiter. */
export function rateLimitedNack(id: string, retryAfterMs: number): NackFrame {
  return nack(id, 'rate_limited', `too many messages; retry in ${retryAfterMs} ms`, retryAfterMs);
}

/** The nack of a send received while the server shuts down. */
export function shuttingDownNack(id: string): NackFrame {
  return nack(id, 'shutting_down', 'the server is shutting down; retry after reconnecting');
}

function conflict(id: string): NackFrame {
  return nack(id, 'id_conflict', `message id "${id}" was already used for a different message`);
}

function inboxFull(id: string, to: string, limit: number): NackFrame {
  return nack(id, 'inbox_full', `${new InboxFullError(to, limit).message}; retry later`, RETRY_AFTER_MS);
}

function storeFailed(id: string): NackFrame {
  return nack(id, 'internal', 'the server could not store the message; retry later', RETRY_AFTER_MS);
}

/**
 * Digest of what makes a message the same message: recipient, conversation
 * and content. Hashes the stable (sorted-key) JSON of
 * `{ to, conversationId, text, replyTo, meta }`, written out by hand in that
 * sorted order: the same bytes as `stableStringify` of the object (digests
 * are stored, so they must not change), at a fraction of the cost.
 */
export function contentDigest(to: string, conversationId: string, frame: Pick<SendFrame, 'text' | 'replyTo' | 'meta'>): string {
  const canonical =
    `{"conversationId":${JSON.stringify(conversationId)},"meta":${frame.meta === undefined ? 'null' : stableStringify(frame.meta)}` +
    `,"replyTo":${frame.replyTo === undefined ? 'null' : JSON.stringify(frame.replyTo)},"text":${JSON.stringify(frame.text)},"to":${JSON.stringify(to)}}`;
  return sha256(canonical).slice(0, 22);
}

/** `crypto.hash` (Node 20.12 and later) hashes in one call, without a Hash object: 0.23 against 0.55 us here. */
const oneShot = (crypto as { hash?: (algorithm: string, data: string, encoding: 'base64url') => string }).hash;

function sha256(data: string): string {
  return oneShot ? oneShot('sha256', data, 'base64url') : createHash('sha256').update(data).digest('base64url');
}
