import { z } from 'zod';
import { NackCode } from './codes.js';
import { AgentId, ConversationId, MessageId } from './ids.js';
import { MessageMeta } from './message.js';

/** Client -> server: send one message. Resending the same `id` is safe. */
export const SendFrame = z.object({
  type: z.literal('send'),
  /** Client-generated unique id, the idempotency key. */
  id: MessageId,
  to: AgentId,
  text: z.string(),
  /** Defaults to the direct conversation of sender and recipient. */
  conversationId: ConversationId.optional(),
  replyTo: MessageId.optional(),
  meta: MessageMeta.optional(),
  /** Sender's creation time, ISO 8601; defaults to the server's time. */
  sentAt: z.iso.datetime().optional(),
  /**
   * The sender's previous message in this conversation, while that one is not
   * yet acknowledged: this message is stored only after it, else refused with
   * `out_of_order` (retryable), so resending in order keeps the conversation
   * in order even when the server refuses some messages for a while.
   */
  after: MessageId.optional(),
});
export type SendFrame = z.infer<typeof SendFrame>;

/** Server -> client: the message is durably stored. Identical for every resend of the same id. */
export const AckFrame = z.object({
  type: z.literal('ack'),
  id: MessageId,
  /** The message's sequence in the recipient's inbox. */
  seq: z.int().positive(),
  /** When the server stored it, ISO 8601 (the delivered message's `serverAt`). */
  at: z.iso.datetime(),
});
export type AckFrame = z.infer<typeof AckFrame>;

/** Server -> client: the message was not stored. */
export const NackFrame = z.object({
  type: z.literal('nack'),
  id: MessageId,
  code: NackCode,
  message: z.string(),
  /** True when sending the same message again later can succeed. */
  retryable: z.boolean(),
  /** For `rate_limited`: how long to wait before retrying. */
  retryAfterMs: z.int().nonnegative().optional(),
});
export type NackFrame = z.infer<typeof NackFrame>;
