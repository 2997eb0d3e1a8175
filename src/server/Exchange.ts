import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import stableStringify from 'fast-json-stable-stringify';
import { MAX_RECEIPT_ITEMS } from '../constants.js';
import type { NackCode } from '../protocol/codes.js';
import { RETRYABLE_NACK_CODES } from '../protocol/codes.js';
import { directConversationId, isDirectConversationOf } from '../protocol/ids.js';
import type { WireMessage } from '../protocol/message.js';
import type { AckFrame, NackFrame, SendFrame } from '../protocol/send.js';
import { isoFormatter } from '../util/isoTime.js';
import { utf8LengthIfOver } from '../util/utf8.js';
import type { Authenticator } from './auth.js';
import type { ServerLogger } from './options.js';
import { InboxFullError, type AcceptedMessage, type InboxStore, type ReceiptBody } from './store/InboxStore.js';

const serverIso = isoFormatter();

/** The answer to a send, or its append under way. */
type Decision = AckFrame | NackFrame | { append: Promise<AcceptedMessage> };

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
  /** Sends being stored, by sender and id: a resend racing the first copy waits for its answer. */
  readonly #inflight = new Map<string, Promise<{ frame: AckFrame | NackFrame; digest: string }>>();
  /** Acks being processed per agent, so receipts are generated once per acknowledged entry. */
  readonly #acking = new Map<string, Promise<void>>();
  /** The last pending decision per sender and conversation. */
  readonly #decisions = new Map<string, Promise<void>>();
  /** Messages admitted (being stored) and not yet findable by findAccepted, by sender and id. */
  readonly #admitted = new Set<string>();

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
      await Promise.allSettled([...this.#inflight.values(), ...this.#acking.values()]);
    }
  }

  /** Handles a `send` from `from`; resolves with the frame to answer it with. */
  async send(from: string, frame: SendFrame): Promise<AckFrame | NackFrame> {
    const max = this.#o.maxMessageBytes;
    const metaBytes = frame.meta ? Buffer.byteLength(JSON.stringify(frame.meta)) : 0;
    const bytes = utf8LengthIfOver(frame.text, max - metaBytes) + metaBytes;
    if (bytes > max) return nack(frame.id, 'too_large', `message is ${bytes} bytes; the limit is ${max}`);
    if (!this.#o.auth.isAddressable(frame.to)) {
      return nack(frame.id, 'unknown_recipient', `no agent "${frame.to}" on this server`);
    }
    let conversationId = frame.conversationId;
    if (conversationId === undefined) {
      conversationId = directConversationId(from, frame.to);
    } else if (conversationId.includes('+') && !isDirectConversationOf(conversationId, from, frame.to)) {
      const direct = directConversationId(from, frame.to);
      return nack(frame.id, 'invalid_message', `conversation id "${conversationId}" is a direct conversation of other agents; use "${direct}" or an id without "+"`);
    }
    const digest = contentDigest(frame.to, conversationId, frame);
    const key = `${from}\n${frame.id}`;
    const racing = this.#inflight.get(key);
    if (racing) return sameOrConflict(await racing, digest, frame.id);
    // Registered before the first await, so a resend arriving meanwhile finds it.
    const work = this.#accept(from, frame, conversationId, digest, key).then((f) => ({ frame: f, digest }));
    this.#inflight.set(key, work);
    try {
      return (await work).frame;
    } finally {
      if (this.#inflight.get(key) === work) this.#inflight.delete(key);
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

  /**
   * Decides, then stores. Decisions for one sender's conversation are taken
   * one after another (each waits for the previous decision, not for its
   * write), so `after` is checked against a settled answer while appends
   * still share fsyncs.
   */
  async #accept(from: string, frame: SendFrame, conversationId: string, digest: string, key: string): Promise<AckFrame | NackFrame> {
    const findNow = this.#findNow;
    // The chain key is built only when some decision is pending (never with a store that answers at once).
    const chainKey = this.#decisions.size === 0 && findNow ? undefined : `${from}\n${conversationId}`;
    const previous = chainKey === undefined ? undefined : this.#decisions.get(chainKey);
    let outcome: Decision;
    if (chainKey === undefined || (previous === undefined && findNow)) {
      // A store that answers at once: decided now, so no later decision can overtake this one.
      outcome = this.#decideWith(from, frame, conversationId, digest, key, findNow!(from, frame.id), (id) => findNow!(from, id) !== undefined);
    } else {
      const decision = (previous ?? Promise.resolve()).then(() => this.#decide(from, frame, conversationId, digest, key));
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
      if (err instanceof InboxFullError) return nack(frame.id, 'inbox_full', `${err.message}; retry later`, RETRY_AFTER_MS);
      this.#o.log({ level: 'error', event: 'store_failed', to: frame.to, error: (err as Error).message });
      return nack(frame.id, 'internal', 'the server could not store the message; retry later', RETRY_AFTER_MS);
    } finally {
      // Stored messages are found by findAccepted from now on.
      this.#admitted.delete(key);
    }
  }

  /**
   * The answer to a send (a duplicate, a conflict, an order problem), or its
   * append under way (wrapped, so that resolving the decision does not wait for it).
   */
  async #decide(from: string, frame: SendFrame, conversationId: string, digest: string, key: string): Promise<Decision> {
    const accepted = await this.#o.store.findAccepted(from, frame.id);
    // The message it must follow is stored, or admitted by an earlier decision of this conversation.
    const afterKnown =
      frame.after === undefined || accepted !== undefined || this.#admitted.has(`${from}\n${frame.after}`) || (await this.#o.store.findAccepted(from, frame.after)) !== undefined;
    return this.#decideWith(from, frame, conversationId, digest, key, accepted, () => afterKnown);
  }

  /** The decision, given what the dedupe index says of this message and of the one it must follow. */
  #decideWith(
    from: string,
    frame: SendFrame,
    conversationId: string,
    digest: string,
    /** `${from}\n${frame.id}`, built once per send. */
    key: string,
    accepted: AcceptedMessage | undefined,
    isStored: (id: string) => boolean,
  ): Decision {
    if (accepted) {
      return accepted.digest === digest ? { type: 'ack', id: frame.id, seq: accepted.seq, at: accepted.at } : conflict(frame.id);
    }
    if (frame.after !== undefined && !this.#admitted.has(`${from}\n${frame.after}`) && !isStored(frame.after)) {
      return nack(frame.id, 'out_of_order', `message ${frame.after} must be stored first; send it again, then this one`, OUT_OF_ORDER_RETRY_MS);
    }
    const serverAt = serverIso(this.#now());
    // Set field by field: spreads of optional parts allocate and leave a slower shape.
    const message: WireMessage = { id: frame.id, from, to: frame.to, conversationId, text: frame.text, sentAt: frame.sentAt ?? serverAt, serverAt };
    if (frame.replyTo !== undefined) message.replyTo = frame.replyTo;
    if (frame.meta !== undefined) message.meta = frame.meta;
    this.#admitted.add(key);
    const append = this.#o.store.appendMessage(message, digest, { maxBacklog: this.#o.maxInboxEntries });
    // Handled by #accept; this keeps an early rejection from being reported as unhandled.
    append.catch(() => {});
    return { append };
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

function sameOrConflict(first: { frame: AckFrame | NackFrame; digest: string }, digest: string, id: string): AckFrame | NackFrame {
  return first.digest === digest ? first.frame : conflict(id);
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
