import type { MessageMeta } from '../protocol/message.js';
import type { FailureReason, MessageRecord, OutgoingStatus, StatusRecord } from './storage/records.js';

/**
 * A message as callbacks receive it and history returns it: a plain object,
 * so `message.from` and `message.text` read as in the seed.
 */
export interface IMMessage {
  id: string;
  conversationId: string;
  /** `out` when this agent sent it, `in` when it was delivered to this agent. */
  direction: 'in' | 'out';
  from: string;
  to: string;
  text: string;
  /** When the sender created it, ISO 8601. */
  sentAt: string;
  replyTo?: string;
  meta?: MessageMeta;
  /** Outgoing only: where the message is in its lifecycle. */
  status?: OutgoingStatus;
  /** Incoming: its sequence in this agent's inbox. Outgoing, once acked: its sequence in the recipient's inbox. */
  seq?: number;
  /** When the server stored it, ISO 8601 (incoming, or outgoing once acked). */
  serverAt?: string;
  /** Outgoing: when the recipient acknowledged delivery, ISO 8601. */
  deliveredAt?: string;
  /** Outgoing, failed: why. */
  error?: FailureReason;
}

/** The message a `message` line of a conversation file describes, before any status line. */
export function messageFromRecord(record: MessageRecord): IMMessage {
  const m: IMMessage = {
    id: record.id,
    conversationId: record.conversationId,
    direction: record.direction,
    from: record.from,
    to: record.to,
    text: record.text,
    sentAt: record.sentAt,
  };
  if (record.replyTo !== undefined) m.replyTo = record.replyTo;
  if (record.meta !== undefined) m.meta = record.meta;
  if (record.status !== undefined) m.status = record.status;
  if (record.seq !== undefined) m.seq = record.seq;
  if (record.serverAt !== undefined) m.serverAt = record.serverAt;
  return m;
}

/**
 * How far a status goes. `failed` and `cancelled` are the client's verdicts,
 * `acked` and `delivered` facts from the server: a receipt that arrives after
 * the client gave up on a message (its acks were lost, the recipient got it
 * anyway) makes it `delivered`.
 */
const rank: Record<OutgoingStatus, number> = { queued: 0, sending: 1, failed: 2, cancelled: 2, acked: 3, delivered: 4 };

/**
 * Folds a status line into its message. Statuses only move forward in the
 * order above, so a duplicate or late line (a receipt the server sent twice,
 * an ack after a receipt) does not move a message back; `seq`, `serverAt`
 * and `error` take the value of the last line that has them, `deliveredAt`
 * that of the first `delivered` line.
 */
export function applyStatus(message: IMMessage, status: StatusRecord): void {
  if (status.seq !== undefined) message.seq = status.seq;
  if (status.serverAt !== undefined) message.serverAt = status.serverAt;
  if (status.status === 'delivered') message.deliveredAt ??= status.at;
  if (status.reason !== undefined) message.error = status.reason;
  if (message.status === undefined || rank[status.status] >= rank[message.status]) message.status = status.status;
}
