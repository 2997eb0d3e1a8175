/**
 * JSON text of the few record shapes written once or more per message
 * (status and message lines, outbox puts, send frames), built field by field.
 * `JSON.stringify` walks an object generically and allocates as it grows its
 * output; these know the fields, quote ids and times as they are (their
 * formats need no escaping, and each is checked), and leave only free text
 * and metadata to `JSON.stringify`. The output is what `JSON.stringify` gives
 * for the same fields in schema order (a test compares them on thousands of
 * variants); any field a writer does not know is not written, as the schemas
 * drop unknown fields on read.
 */

/** Printable ASCII without `"` and `\`: quoted as is, a string is already its own JSON. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** The JSON text of a string: as is between quotes when nothing in it needs escaping (ids, times, enums). */
export function quote(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** The JSON text of a number field (`null` for what JSON cannot hold, as `JSON.stringify` writes it). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

/** Appends `,"key":value` for an optional field that is set. */
function opt(key: string, value: string | undefined): string {
  return value === undefined ? '' : `,"${key}":${quote(value)}`;
}

function optJson(key: string, value: unknown): string {
  return value === undefined ? '' : `,"${key}":${JSON.stringify(value)}`;
}

function optNum(key: string, value: number | undefined): string {
  return value === undefined ? '' : `,"${key}":${num(value)}`;
}

/** The fields of a status line (`src/core/storage/records.ts` StatusRecord). */
export interface StatusFields {
  type: 'status';
  id: string;
  status: string;
  at: string;
  seq?: number | undefined;
  serverAt?: string | undefined;
  reason?: unknown;
}

/** The fields of a message line (MessageRecord). */
export interface MessageFields {
  type: 'message';
  id: string;
  conversationId: string;
  direction: string;
  from: string;
  to: string;
  text: string;
  replyTo?: string | undefined;
  meta?: unknown;
  sentAt: string;
  status?: string | undefined;
  seq?: number | undefined;
  serverAt?: string | undefined;
}

/** A line of a conversation file. */
export function conversationLine(r: StatusFields | MessageFields): string {
  if (r.type === 'status') {
    return `{"type":"status","id":${quote(r.id)},"status":${quote(r.status)},"at":${quote(r.at)}${optNum('seq', r.seq)}${opt('serverAt', r.serverAt)}${optJson('reason', r.reason)}}`;
  }
  return (
    `{"type":"message","id":${quote(r.id)},"conversationId":${quote(r.conversationId)},"direction":${quote(r.direction)},"from":${quote(r.from)},"to":${quote(r.to)},"text":${JSON.stringify(r.text)}` +
    `${opt('replyTo', r.replyTo)}${optJson('meta', r.meta)},"sentAt":${quote(r.sentAt)}${opt('status', r.status)}${optNum('seq', r.seq)}${opt('serverAt', r.serverAt)}}`
  );
}

/** The fields of an outbox entry (OutboxEntry). */
export interface EntryFields {
  id: string;
  conversationId: string;
  to: string;
  text: string;
  replyTo?: string | undefined;
  meta?: unknown;
  sentAt: string;
  expiresAt?: string | undefined;
  offset?: number | undefined;
}

/** A `put` line of `outbox.jsonl`; it begins `{"op":"put","entry":{"id":"`, which the spill read-back relies on. */
export function putLine(e: EntryFields): string {
  return (
    `{"op":"put","entry":{"id":${quote(e.id)},"conversationId":${quote(e.conversationId)},"to":${quote(e.to)},"text":${JSON.stringify(e.text)}` +
    `${opt('replyTo', e.replyTo)}${optJson('meta', e.meta)},"sentAt":${quote(e.sentAt)}${opt('expiresAt', e.expiresAt)}${optNum('offset', e.offset)}}}`
  );
}

/** The fields of a `send` frame (SendFrame). */
export interface SendFields {
  type: 'send';
  id: string;
  to: string;
  text: string;
  conversationId?: string | undefined;
  replyTo?: string | undefined;
  meta?: unknown;
  sentAt?: string | undefined;
  after?: string | undefined;
}

/** A `send` frame. */
export function sendFrameText(f: SendFields): string {
  return (
    `{"type":"send","id":${quote(f.id)},"to":${quote(f.to)},"text":${JSON.stringify(f.text)}${opt('conversationId', f.conversationId)}` +
    `${opt('replyTo', f.replyTo)}${optJson('meta', f.meta)}${opt('sentAt', f.sentAt)}${opt('after', f.after)}}`
  );
}
