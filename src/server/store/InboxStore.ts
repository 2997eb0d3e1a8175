import type { InboxPosition } from '../../protocol/handshake.js';
import type { ReceiptItem } from '../../protocol/delivery.js';
import type { WireMessage } from '../../protocol/message.js';

/** A message the server accepted, as remembered for deduplication. */
export interface AcceptedMessage {
  /** Recipient. */
  to: string;
  /** Sequence in the recipient's inbox. */
  seq: number;
  /** When the server stored it, ISO 8601 (the `serverAt` of the message). */
  at: string;
  /** Digest of the message content, to tell a true resend from an id reused for other content. */
  digest: string;
}

/** What a receipt says: `by` acknowledged these messages at `at`. */
export interface ReceiptBody {
  by: string;
  at: string;
  messages: ReceiptItem[];
}

/** An unacknowledged inbox entry, ready to be framed. */
export type InboxEntry =
  | {
      seq: number;
      kind: 'message';
      /** JSON of the {@link WireMessage}, exactly as it goes into a `deliver` frame. */
      payload: string;
      from: string;
      id: string;
      conversationId: string;
    }
  | {
      seq: number;
      kind: 'receipt';
      /** JSON of the {@link ReceiptBody}. */
      payload: string;
    };

/**
 * Durable per-agent inboxes behind the reference server. Every method that
 * changes state resolves only once the change is durable. The file store
 * (`FileInboxStore`) is the one shipped; another backend implements this.
 */
export interface InboxStore {
  /** Loads state from durable storage; called once before anything else. */
  open(): Promise<void>;
  /** Flushes and releases everything. */
  close(): Promise<void>;
  /** The agent's inbox position (creating an empty inbox with a fresh epoch if it never existed). */
  position(agentId: string): Promise<InboxPosition>;
  /** Number of unacknowledged entries in the agent's inbox. */
  backlog(agentId: string): Promise<number>;
  /** A message previously accepted from `from` with id `id`, within the dedupe window. */
  findAccepted(from: string, id: string): Promise<AcceptedMessage | undefined>;
  /**
   * The same lookup answered synchronously, for stores that keep the dedupe
   * index in memory: the exchange then decides a send without waiting a turn.
   */
  findAcceptedNow?(from: string, id: string): AcceptedMessage | undefined;
  /**
   * Appends a message to its recipient's inbox and remembers it for
   * deduplication; resolves with its acceptance once durable. Rejects with
   * {@link InboxFullError} when the recipient already holds `maxBacklog`
   * unacknowledged entries (checked atomically with the append).
   */
  appendMessage(message: WireMessage, digest: string, limits?: { maxBacklog?: number }): Promise<AcceptedMessage>;
  /**
   * Appends messages to one recipient's inbox (`to` of every one of them), in
   * order and together (the file store writes them with one append), and
   * remembers them for deduplication; resolves once all are durable with the
   * acceptance of each, or `undefined` for each refused because the inbox
   * already held `maxBacklog` unacknowledged entries: the end of the batch,
   * so what is accepted keeps the order it was sent in.
   */
  appendMessages(to: string, batch: ReadonlyArray<{ message: WireMessage; digest: string }>, limits?: { maxBacklog?: number }): Promise<Array<AcceptedMessage | undefined>>;
  /** Appends a receipt to `to`'s inbox; resolves with its sequence once durable. */
  appendReceipt(to: string, receipt: ReceiptBody): Promise<number>;
  /** Unacknowledged entries of the agent with `seq > afterSeq`, oldest first, at most `limit`. */
  read(agentId: string, afterSeq: number, limit: number): Promise<InboxEntry[]>;
  /** Unacknowledged entries of the agent with `seq <= upTo`: what an ack to `upTo` would cover. */
  coveredBy(agentId: string, upTo: number): Promise<InboxEntry[]>;
  /** Records the agent's cumulative acknowledgement and trims what it covers; resolves once durable. */
  ack(agentId: string, upTo: number): Promise<void>;
}

/** The recipient's inbox holds its maximum of unacknowledged entries. */
export class InboxFullError extends Error {
  readonly code = 'inbox_full';

  constructor(agentId: string, limit: number) {
    super(`the inbox of "${agentId}" holds ${limit} undelivered entries`);
    this.name = 'InboxFullError';
  }
}
