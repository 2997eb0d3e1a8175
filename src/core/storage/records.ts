import { z } from 'zod';
import { AgentId, ConversationId, MessageId } from '../../protocol/ids.js';
import { MessageMeta } from '../../protocol/message.js';

/*
 * The schemas of every file under {workspace}/im_client/ (see docs/storage.md).
 * Records are validated on read; a line or file that does not match is never
 * used as if it did.
 */

const IsoTime = z.iso.datetime();

/** `config.json`: whose workspace this is. */
export const ClientConfigFile = z.object({
  version: z.literal(1),
  agentId: AgentId,
  imServerUrl: z.string().optional(),
  createdAt: IsoTime,
  updatedAt: IsoTime,
});
export type ClientConfigFile = z.infer<typeof ClientConfigFile>;

/** One contact. */
export const Contact = z.object({
  contactId: AgentId,
  name: z.string().max(200),
  description: z.string().max(2000).optional(),
  /** Whether the contact is another agent or a person. @default 'agent' */
  kind: z.enum(['agent', 'user']).optional(),
  meta: MessageMeta.optional(),
  addedAt: IsoTime,
  updatedAt: IsoTime,
});
export type Contact = z.infer<typeof Contact>;

/** `contacts.json`. */
export const ContactsFile = z.object({
  version: z.literal(1),
  contacts: z.array(Contact),
});
export type ContactsFile = z.infer<typeof ContactsFile>;

/** The status of an outgoing message, in lifecycle order. */
export const OutgoingStatus = z.enum(['queued', 'sending', 'acked', 'delivered', 'failed', 'cancelled']);
export type OutgoingStatus = z.infer<typeof OutgoingStatus>;

/** Why a message failed. */
export const FailureReason = z.object({
  /** An IMClientError code (`MESSAGE_REJECTED`, `MESSAGE_EXPIRED`...). */
  code: z.string(),
  /** The server's nack code when the server refused it. */
  nack: z.string().optional(),
  message: z.string(),
});
export type FailureReason = z.infer<typeof FailureReason>;

/** A message line of `conversations/{conversation_id}.jsonl`. */
export const MessageRecord = z.object({
  type: z.literal('message'),
  id: MessageId,
  conversationId: ConversationId,
  /** `out`: this agent sent it; `in`: it was delivered to this agent. */
  direction: z.enum(['out', 'in']),
  from: AgentId,
  to: AgentId,
  text: z.string(),
  replyTo: MessageId.optional(),
  meta: MessageMeta.optional(),
  sentAt: IsoTime,
  /** Outgoing: the status when written (always `queued`); later statuses follow as status lines. */
  status: OutgoingStatus.optional(),
  /** Incoming: the message's sequence in this agent's server inbox. */
  seq: z.int().positive().optional(),
  /** Incoming: when the server stored it. */
  serverAt: IsoTime.optional(),
});
export type MessageRecord = z.infer<typeof MessageRecord>;

/** A status line of `conversations/{conversation_id}.jsonl`: a later lifecycle step of an outgoing message. */
export const StatusRecord = z.object({
  type: z.literal('status'),
  id: MessageId,
  status: OutgoingStatus,
  at: IsoTime,
  /** `acked`: the message's sequence in the recipient's inbox. */
  seq: z.int().positive().optional(),
  /** `acked`: when the server stored it. */
  serverAt: IsoTime.optional(),
  /** `failed`: why. */
  reason: FailureReason.optional(),
});
export type StatusRecord = z.infer<typeof StatusRecord>;

export const ConversationRecord = z.discriminatedUnion('type', [MessageRecord, StatusRecord]);
export type ConversationRecord = z.infer<typeof ConversationRecord>;

/** An outgoing message waiting in the outbox for the server's ack. */
export const OutboxEntry = z.object({
  id: MessageId,
  conversationId: ConversationId,
  to: AgentId,
  text: z.string(),
  replyTo: MessageId.optional(),
  meta: MessageMeta.optional(),
  sentAt: IsoTime,
  /** After this instant the message fails with `MESSAGE_EXPIRED` instead of being sent. */
  expiresAt: IsoTime.optional(),
  /**
   * Byte offset of the conversation file when the message was queued: its
   * `message` line is at or after it. On start the client checks from there
   * and writes the line if a crash came between the two writes.
   */
  offset: z.int().nonnegative().optional(),
});
export type OutboxEntry = z.infer<typeof OutboxEntry>;

/** A line of `outbox.jsonl`: a message entered the outbox, or left it. */
export const OutboxRecord = z.discriminatedUnion('op', [
  z.object({ op: z.literal('put'), entry: OutboxEntry }),
  z.object({ op: z.literal('done'), id: MessageId, status: z.enum(['acked', 'failed', 'cancelled']) }),
]);
export type OutboxRecord = z.infer<typeof OutboxRecord>;

/** `cursor.json`: how far this agent's inbox has been durably received. */
export const CursorFile = z.object({
  version: z.literal(1),
  /** The server inbox epoch this cursor belongs to. */
  epoch: z.string().min(1).max(64),
  /** Every delivery up to this sequence is in the conversation files (and the pending queue). */
  ackedUpTo: z.int().nonnegative(),
  /**
   * A batch being written: deliveries `fromSeq..toSeq` may be partly in the
   * listed files after the listed byte offsets. Present only between the two
   * writes that bracket a batch; a client that finds it on start finishes the batch.
   */
  inflight: z
    .object({
      fromSeq: z.int().positive(),
      toSeq: z.int().positive(),
      files: z.array(z.object({ conversationId: ConversationId, offset: z.int().nonnegative() })),
    })
    .optional(),
});
export type CursorFile = z.infer<typeof CursorFile>;

/** A message in the digital-employee pending queue. */
export const PendingItem = z.object({
  message: MessageRecord,
  enqueuedAt: IsoTime,
  /** How many times it was claimed. */
  attempts: z.int().nonnegative(),
  /** Number of the claim that last claimed it (claims are numbered in order). */
  claimSeq: z.int().positive().optional(),
  /** Set while claimed: the claim returns to pending at this instant unless acknowledged. */
  leaseUntil: IsoTime.optional(),
});
export type PendingItem = z.infer<typeof PendingItem>;

/** `queue/pending.json`: a snapshot of the pending queue, oldest first. */
export const PendingFile = z.object({
  version: z.literal(1),
  items: z.array(PendingItem),
});
export type PendingFile = z.infer<typeof PendingFile>;

/**
 * A queued message's key: `{from}/{id}`. Message ids are unique per sender,
 * not globally, and neither agent ids nor message ids contain `/`.
 */
export function pendingKey(from: string, id: string): string {
  return `${from}/${id}`;
}

/**
 * An item named in a pending log line: its key (`{from}/{id}`), or, in lines
 * written before keys, its message id alone (the queue then held one item per id).
 */
const PendingRef = z.string().regex(/^(?:[A-Za-z0-9][A-Za-z0-9_.@-]{0,95}\/)?[A-Za-z0-9_-]{8,128}$/, 'pending item: {from}/{message id}, or a message id');

/**
 * A line of `queue/pending.log.jsonl`: one change since the snapshot.
 * Replaying a line again, or an older log over a newer snapshot, changes
 * nothing: claims are numbered, a claim applies only to items last claimed by
 * an older claim, an extension only to items still held by the claim it
 * names, and a release only to items claimed at or before it.
 */
export const PendingLogRecord = z.discriminatedUnion('op', [
  z.object({ op: z.literal('add'), item: PendingItem }),
  z.object({ op: z.literal('claim'), seq: z.int().positive(), ids: z.array(PendingRef), leaseUntil: IsoTime }),
  z.object({ op: z.literal('extend'), seq: z.int().nonnegative(), ids: z.array(PendingRef), leaseUntil: IsoTime }),
  z.object({ op: z.literal('release'), seq: z.int().nonnegative(), ids: z.array(PendingRef) }),
  z.object({ op: z.literal('ack'), ids: z.array(PendingRef) }),
]);
export type PendingLogRecord = z.infer<typeof PendingLogRecord>;
