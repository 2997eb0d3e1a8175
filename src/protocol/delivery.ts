import { z } from 'zod';
import { AgentId, ConversationId, MessageId } from './ids.js';
import { WireMessage } from './message.js';

/** Server -> client: a message for this agent, at inbox sequence `seq`. */
export const DeliverFrame = z.object({
  type: z.literal('deliver'),
  seq: z.int().positive(),
  message: WireMessage,
});
export type DeliverFrame = z.infer<typeof DeliverFrame>;

/** One message a receipt reports on. */
export const ReceiptItem = z.object({
  id: MessageId,
  conversationId: ConversationId,
});
export type ReceiptItem = z.infer<typeof ReceiptItem>;

/**
 * Server -> client: the recipient `by` acknowledged delivery of these messages
 * this agent sent. Receipts share the inbox sequence with deliveries.
 */
export const ReceiptFrame = z.object({
  type: z.literal('receipt'),
  seq: z.int().positive(),
  by: AgentId,
  /** When the recipient acknowledged them, ISO 8601. */
  at: z.iso.datetime(),
  messages: z.array(ReceiptItem).min(1),
});
export type ReceiptFrame = z.infer<typeof ReceiptFrame>;

/** Client -> server: everything up to and including `upTo` is durably stored (cumulative). */
export const DeliverAckFrame = z.object({
  type: z.literal('deliver_ack'),
  upTo: z.int().nonnegative(),
});
export type DeliverAckFrame = z.infer<typeof DeliverAckFrame>;
