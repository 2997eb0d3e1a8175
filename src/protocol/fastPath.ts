import { regexes } from 'zod';
import { AGENT_ID_PATTERN, CONVERSATION_ID_PATTERN, MESSAGE_ID_PATTERN } from './ids.js';

/**
 * Hand-written checks for the frames that carry messages (`send`, `ack`,
 * `deliver`, `receipt`, `deliver_ack`): each says whether a parsed frame is
 * one its zod schema accepts *unchanged* (no key zod would strip, no
 * optional part zod would need to rebuild). A frame that passes is used as
 * it is, which skips zod's parse and copy, the largest cost of decoding a
 * message; one that does not (an unknown key, `meta`, anything invalid) goes
 * to the schema, which decides and explains. The zod schemas stay the single
 * source of the wire types; `test/protocol/fastPath.test.ts` checks that
 * nothing passes here that they refuse or would return changed.
 */
export type FastCheck = (frame: Record<string, unknown>) => boolean;

/** zod's own `z.iso.datetime()` pattern, so both accept the same times. */
const DATETIME = regexes.datetime({});

const isMessageId = (v: unknown): boolean => typeof v === 'string' && MESSAGE_ID_PATTERN.test(v);
const isAgentId = (v: unknown): boolean => typeof v === 'string' && AGENT_ID_PATTERN.test(v);
const isConversationId = (v: unknown): boolean => typeof v === 'string' && CONVERSATION_ID_PATTERN.test(v);
const isDatetime = (v: unknown): boolean => typeof v === 'string' && DATETIME.test(v);
/** `z.int().positive()`: a safe integer above zero. */
const isSeq = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) > 0;
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Counts the object's keys; `allowed` says which may appear. */
function onlyKeys(o: Record<string, unknown>, allowed: ReadonlySet<string>): number | undefined {
  let n = 0;
  for (const key in o) {
    if (!allowed.has(key)) return undefined;
    n++;
  }
  return n;
}

const ACK_KEYS = new Set(['type', 'id', 'seq', 'at']);
const DELIVER_ACK_KEYS = new Set(['type', 'upTo']);
const DELIVER_KEYS = new Set(['type', 'seq', 'message']);
const WIRE_KEYS = new Set(['id', 'from', 'to', 'conversationId', 'text', 'replyTo', 'sentAt', 'serverAt']);
const RECEIPT_KEYS = new Set(['type', 'seq', 'by', 'at', 'messages']);
const RECEIPT_ITEM_KEYS = new Set(['id', 'conversationId']);
const SEND_KEYS = new Set(['type', 'id', 'to', 'text', 'conversationId', 'replyTo', 'sentAt', 'after']);

/** An optional field: absent, or valid. (`undefined` cannot come out of JSON.) */
const optional = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || check(v);

const ack: FastCheck = (f) =>
  onlyKeys(f, ACK_KEYS) === 4 && isMessageId(f.id) && isSeq(f.seq) && isDatetime(f.at);

const deliverAck: FastCheck = (f) => onlyKeys(f, DELIVER_ACK_KEYS) === 2 && Number.isSafeInteger(f.upTo) && (f.upTo as number) >= 0;

const deliver: FastCheck = (f) => {
  if (onlyKeys(f, DELIVER_KEYS) !== 3 || !isSeq(f.seq)) return false;
  const m = f.message;
  if (!isPlainObject(m)) return false;
  const n = onlyKeys(m, WIRE_KEYS);
  return (
    n !== undefined &&
    n === 7 + (m.replyTo === undefined ? 0 : 1) &&
    isMessageId(m.id) &&
    isAgentId(m.from) &&
    isAgentId(m.to) &&
    isConversationId(m.conversationId) &&
    typeof m.text === 'string' &&
    optional(m.replyTo, isMessageId) &&
    isDatetime(m.sentAt) &&
    isDatetime(m.serverAt)
  );
};

const receipt: FastCheck = (f) => {
  if (onlyKeys(f, RECEIPT_KEYS) !== 5 || !isSeq(f.seq) || !isAgentId(f.by) || !isDatetime(f.at)) return false;
  const items = f.messages;
  if (!Array.isArray(items) || items.length === 0) return false;
  for (const item of items) {
    if (!isPlainObject(item) || onlyKeys(item, RECEIPT_ITEM_KEYS) !== 2 || !isMessageId(item.id) || !isConversationId(item.conversationId)) return false;
  }
  return true;
};

const send: FastCheck = (f) => {
  const n = onlyKeys(f, SEND_KEYS);
  return (
    n !== undefined &&
    isMessageId(f.id) &&
    isAgentId(f.to) &&
    typeof f.text === 'string' &&
    optional(f.conversationId, isConversationId) &&
    optional(f.replyTo, isMessageId) &&
    optional(f.sentAt, isDatetime) &&
    optional(f.after, isMessageId)
  );
};

/** The checks of frames a server receives, by type. */
export const fastClientFrames: ReadonlyMap<string, FastCheck> = new Map([
  ['send', send],
  ['deliver_ack', deliverAck],
]);

/** The checks of frames a client receives, by type. */
export const fastServerFrames: ReadonlyMap<string, FastCheck> = new Map([
  ['ack', ack],
  ['deliver', deliver],
  ['receipt', receipt],
]);
