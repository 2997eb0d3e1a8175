import { z } from 'zod';
import { AgentId, ConversationId, MessageId } from './ids.js';

/** Application metadata attached to a message: any JSON object. */
export const MessageMeta = z.record(z.string(), z.json());
export type MessageMeta = z.infer<typeof MessageMeta>;

/** A message as the server stores and delivers it. */
export const WireMessage = z.object({
  /** The sender's idempotency key. */
  id: MessageId,
  from: AgentId,
  to: AgentId,
  conversationId: ConversationId,
  text: z.string(),
  replyTo: MessageId.optional(),
  meta: MessageMeta.optional(),
  /** When the sender created the message (sender's clock), ISO 8601. */
  sentAt: z.iso.datetime(),
  /** When the server stored it (server's clock), ISO 8601. */
  serverAt: z.iso.datetime(),
});
export type WireMessage = z.infer<typeof WireMessage>;
