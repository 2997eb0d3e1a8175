import { z } from 'zod';
import { InvalidIdError } from '../errors.js';

/*
 * Ids travel on the wire and become file names on both ends (a conversation id
 * names `conversations/{id}.jsonl`, an agent id names the server's inbox
 * folder). The character sets below cannot express a path separator, a parent
 * directory or a hidden file, so an id can never name a path outside the
 * directory it is joined to; the lengths keep `{id}.jsonl` under the 255-byte
 * file-name limit of common file systems.
 */

/** Agent and contact ids: a letter or digit, then letters, digits, `_ . @ -`; 1 to 96 characters. */
export const AGENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,95}$/;
/** Conversation ids: as agent ids plus `+` (the direct-conversation separator); 1 to 200 characters. */
export const CONVERSATION_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,199}$/;
/** Message ids (idempotency keys): letters, digits, `_ -`; 8 to 128 characters. */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9_-]{8,128}$/;

export const AgentId = z.string().regex(AGENT_ID_PATTERN, 'agent id: 1-96 of [A-Za-z0-9_.@-], starting with a letter or digit');
export const ConversationId = z
  .string()
  .regex(CONVERSATION_ID_PATTERN, 'conversation id: 1-200 of [A-Za-z0-9_.@+-], starting with a letter or digit');
export const MessageId = z.string().regex(MESSAGE_ID_PATTERN, 'message id: 8-128 of [A-Za-z0-9_-]');

/** The kinds of id {@link assertId} checks. */
export type IdKind = 'agentId' | 'contactId' | 'conversationId' | 'messageId';

const patterns: Record<IdKind, RegExp> = {
  agentId: AGENT_ID_PATTERN,
  contactId: AGENT_ID_PATTERN,
  conversationId: CONVERSATION_ID_PATTERN,
  messageId: MESSAGE_ID_PATTERN,
};

const rules: Record<IdKind, string> = {
  agentId: '1-96 characters of [A-Za-z0-9_.@-], starting with a letter or digit',
  contactId: '1-96 characters of [A-Za-z0-9_.@-], starting with a letter or digit',
  conversationId: '1-200 characters of [A-Za-z0-9_.@+-], starting with a letter or digit',
  messageId: '8-128 characters of [A-Za-z0-9_-]',
};

/**
 * Throws {@link InvalidIdError} unless `value` is a valid id of `kind`.
 *
 * @example
 * ```ts
 * assertId('contactId', '../etc'); // throws InvalidIdError (code INVALID_ID)
 * ```
 */
export function assertId(kind: IdKind, value: unknown): asserts value is string {
  if (typeof value !== 'string' || !patterns[kind].test(value)) {
    throw new InvalidIdError(kind, value, `expected ${rules[kind]}`);
  }
}

/** True when `value` is a valid id of `kind`. */
export function isId(kind: IdKind, value: unknown): value is string {
  return typeof value === 'string' && patterns[kind].test(value);
}

/**
 * The conversation id of the direct conversation between two agents: both ids
 * sorted and joined by `+`, so both ends name it the same way.
 *
 * @example
 * ```ts
 * directConversationId('agent_002', 'agent_001'); // 'agent_001+agent_002'
 * ```
 */
/**
 * Whether `conversationId` is the direct conversation of agents `a` and `b`
 * (what {@link directConversationId} gives), without building that id.
 */
export function isDirectConversationOf(conversationId: string, a: string, b: string): boolean {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  return conversationId.length === lo.length + 1 + hi.length && conversationId.charCodeAt(lo.length) === 43 && conversationId.startsWith(lo) && conversationId.endsWith(hi);
}

export function directConversationId(a: string, b: string): string {
  assertId('agentId', a);
  assertId('agentId', b);
  return a < b ? `${a}+${b}` : `${b}+${a}`;
}
