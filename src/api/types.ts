import type { ConnectionStateChange } from '../core/connection/ConnectionManager.js';
import type { IMMessage } from '../core/IMMessage.js';
import type { StatusUpdate } from '../core/messages/Outbox.js';
import type { PendingMessage, PendingRef } from '../core/messages/PendingQueue.js';
import type { IMClientError } from '../errors.js';
import type { MessageMeta } from '../protocol/message.js';

/** Options of `client.sendMessage()`. */
export interface SendMessageOptions {
  /** Recipient agent or user id. */
  to: string;
  text: string;
  /** Defaults to the direct conversation with `to` (`{a}+{b}`, ids sorted). */
  conversationId?: string | undefined;
  /** Id of the message this one answers. */
  replyTo?: string | undefined;
  /** Any JSON object, delivered with the message. */
  meta?: MessageMeta | undefined;
  /**
   * Your own idempotency key (8-128 of `[A-Za-z0-9_-]`): sending the same id
   * again while it is still in the outbox returns the queued message instead
   * of a second one. Generated when omitted.
   */
  id?: string | undefined;
  /** Time to live for this message. @default the client's `messageTtlMs` */
  ttlMs?: number | undefined;
  /**
   * What to wait for before resolving: `'stored'` (durable in the local
   * outbox; works offline), `'acked'` (stored by the server) or
   * `'delivered'` (the recipient acknowledged it).
   * @default 'stored'
   */
  waitFor?: 'stored' | 'acked' | 'delivered' | undefined;
  /** Aborts the wait (not the send: the message stays queued; use `cancelMessage`). */
  signal?: AbortSignal | undefined;
  /** Bounds the wait; rejects with code `TIMEOUT`. */
  timeoutMs?: number | undefined;
}

/** Options of `client.getConversationHistory()`: give `contactId` or `conversationId`. */
export interface HistoryOptions {
  /** The direct conversation with this contact. */
  contactId?: string | undefined;
  /** Any conversation (a thread id, or a direct id). */
  conversationId?: string | undefined;
  /** At most this many messages, the newest ones. @default 50 */
  limit?: number | undefined;
  /** Only messages older than the message with this id (paging backwards). */
  before?: string | undefined;
}

/** What `addContact` takes. */
export interface ContactInput {
  contactId: string;
  name: string;
  description?: string | undefined;
  /** @default 'agent' */
  kind?: 'agent' | 'user' | undefined;
  meta?: MessageMeta | undefined;
}

/** Options of `client.drainPendingMessages()`. */
export interface DrainOptions {
  /** Messages processed at once. @default 1 */
  concurrency?: number | undefined;
  /** Lease of each claim. @default the client's `leaseMs` */
  leaseMs?: number | undefined;
  /** Stops draining (in-progress handlers finish; their messages are acknowledged or released). */
  signal?: AbortSignal | undefined;
  /** Resolve once the queue is empty instead of waiting for more. @default false */
  untilEmpty?: boolean | undefined;
}

/** Something odd the client survived, for logs. */
export interface IMClientWarning {
  /** `storage`: a torn or corrupt line was skipped; `protocol`: the server sent something odd; `listener`: a callback threw. */
  kind: 'storage' | 'protocol' | 'listener';
  message: string;
  file?: string;
  line?: number;
}

/** The events of an IMClient (`client.on(event, listener)`). */
export interface IMClientEvents {
  /** A message arrived (durable in history, and in the pending queue in queue mode). Each id once. */
  message: (message: IMMessage) => void;
  /** An outgoing message changed status (durable): acked, delivered, failed or cancelled. */
  status: (update: StatusUpdate) => void;
  /** The connection state changed. */
  connectionStateChange: (change: ConnectionStateChange) => void;
  /** Something odd the client survived. */
  warning: (warning: IMClientWarning) => void;
  /** A background operation failed (e.g. a status could not be written). */
  error: (error: IMClientError) => void;
}

export type { PendingMessage, PendingRef };
