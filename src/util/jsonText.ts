/**
 * JSON text of the few record shapes written once or more per message
 * (status and message lines, outbox puts, send frames), built field by field.
 * `JSON.stringify` walks an object generically and allocates as it grows its
 * output; these know the fields. Ids, agent and conversation ids, times and
 * enums are written between quotes as they are: their formats are checked at
 * every way in (the API, frame validation, the schemas of every file read),
 * and each admits only printable ASCII without `"` or `\`, which JSON writes
 * unescaped (`test/util/jsonText.test.ts` holds the formats to that). Free
 * text and metadata go through `JSON.stringify`. The output is what
 * `JSON.stringify` gives for the same fields in schema order (the test
 * compares them on thousands of variants); any field a writer does not know
 * is not written, as the schemas drop unknown fields on read.
 */

/** Printable ASCII without `"` and `\`: quoted as is, a string is already its own JSON. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** The JSON text of any string: as is between quotes when nothing in it needs escaping. */
export function quote(s: string): string {
  return PLAIN.test(s) ? `"${s}"` : JSON.stringify(s);
}

/** The JSON text of a number field (`null` for what JSON cannot hold, as `JSON.stringify` writes it). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
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
    return (
      `{"type":"status","id":"${r.id}","status":"${r.status}","at":"${r.at}"` +
      `${r.seq === undefined ? '' : `,"seq":${num(r.seq)}`}${r.serverAt === undefined ? '' : `,"serverAt":"${r.serverAt}"`}` +
      `${r.reason === undefined ? '' : `,"reason":${JSON.stringify(r.reason)}`}}`
    );
  }
  return (
    `{"type":"message","id":"${r.id}","conversationId":"${r.conversationId}","direction":"${r.direction}","from":"${r.from}","to":"${r.to}","text":${JSON.stringify(r.text)}` +
    `${r.replyTo === undefined ? '' : `,"replyTo":"${r.replyTo}"`}${r.meta === undefined ? '' : `,"meta":${JSON.stringify(r.meta)}`},"sentAt":"${r.sentAt}"` +
    `${r.status === undefined ? '' : `,"status":"${r.status}"`}${r.seq === undefined ? '' : `,"seq":${num(r.seq)}`}${r.serverAt === undefined ? '' : `,"serverAt":"${r.serverAt}"`}}`
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
    `{"op":"put","entry":{"id":"${e.id}","conversationId":"${e.conversationId}","to":"${e.to}","text":${JSON.stringify(e.text)}` +
    `${e.replyTo === undefined ? '' : `,"replyTo":"${e.replyTo}"`}${e.meta === undefined ? '' : `,"meta":${JSON.stringify(e.meta)}`},"sentAt":"${e.sentAt}"` +
    `${e.expiresAt === undefined ? '' : `,"expiresAt":"${e.expiresAt}"`}${e.offset === undefined ? '' : `,"offset":${num(e.offset)}`}}}`
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
    `{"type":"send","id":"${f.id}","to":"${f.to}","text":${JSON.stringify(f.text)}${f.conversationId === undefined ? '' : `,"conversationId":"${f.conversationId}"`}` +
    `${f.replyTo === undefined ? '' : `,"replyTo":"${f.replyTo}"`}${f.meta === undefined ? '' : `,"meta":${JSON.stringify(f.meta)}`}` +
    `${f.sentAt === undefined ? '' : `,"sentAt":"${f.sentAt}"`}${f.after === undefined ? '' : `,"after":"${f.after}"`}}`
  );
}

/** The fields of an `ack` frame (AckFrame). */
export interface AckFields {
  type: 'ack';
  id: string;
  seq: number;
  at: string;
}

/** An `ack` frame: one per message stored, on the server. */
export function ackFrameText(f: AckFields): string {
  return `{"type":"ack","id":"${f.id}","seq":${num(f.seq)},"at":"${f.at}"}`;
}
