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

/*
 * Each writer below fills the slots of an array of its own, whose other entries are the fixed
 * JSON between the fields, and joins it: the line is allocated once, flat. A template literal
 * (or `+`) builds a tree of partial strings instead, which is copied flat again when the line is
 * measured or written to a file or socket: about 450 bytes more per line, several lines per
 * message. The arrays are reused: each writer encodes its free values (text, metadata, reason)
 * before it fills a slot, then runs to completion, and empties the slots after the join so that no
 * message's text stays referenced.
 *
 * An optional field takes three slots: its key (with the opening quote of a string value), its
 * value, and what closes it; all three are empty when the field is absent.
 */

/** The parts of a status line: id, status and at in slots 1, 3, 5; seq, serverAt and reason from 7, 10, 13. */
const STATUS = ['{"type":"status","id":"', '', '","status":"', '', '","at":"', '', '"', '', '', '', '', '', '', '', '', '', '}'];
const VALUES_STATUS = [1, 3, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/** The parts of a message line. */
const MESSAGE = [
  '{"type":"message","id":"', '', '","conversationId":"', '', '","direction":"', '', '","from":"', '', '","to":"', '', '","text":', '',
  '', '', '', // replyTo: 12-14
  '', '', '', // meta: 15-17
  ',"sentAt":"', '', '"', // 18-20
  '', '', '', // status: 21-23
  '', '', '', // seq: 24-26
  '', '', '', // serverAt: 27-29
  '}',
];
const VALUES_MESSAGE = [1, 3, 5, 7, 9, 11, 12, 13, 14, 15, 16, 17, 19, 21, 22, 23, 24, 25, 26, 27, 28, 29];
/** The parts of an outbox `put` line. */
const PUT = [
  '{"op":"put","entry":{"id":"', '', '","conversationId":"', '', '","to":"', '', '","text":', '',
  '', '', '', // replyTo: 8-10
  '', '', '', // meta: 11-13
  ',"sentAt":"', '', '"', // 14-16
  '', '', '', // expiresAt: 17-19
  '', '', '', // offset: 20-22
  '}}',
];
const VALUES_PUT = [1, 3, 5, 7, 8, 9, 10, 11, 12, 13, 15, 17, 18, 19, 20, 21, 22];
/** The parts of a `send` frame. */
const SEND = [
  '{"type":"send","id":"', '', '","to":"', '', '","text":', '',
  '', '', '', // conversationId: 6-8
  '', '', '', // replyTo: 9-11
  '', '', '', // meta: 12-14
  '', '', '', // sentAt: 15-17
  '', '', '', // after: 18-20
  '}',
];
const VALUES_SEND = [1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20];
/** The parts of an `ack` frame. */
const ACK = ['{"type":"ack","id":"', '', '","seq":', '', ',"at":"', '', '"}'];
const VALUES_ACK = [1, 3, 5];

/** Fills an optional field's three slots from `at`: key, value and closing, or three empty strings. */
function optional(parts: string[], at: number, key: string, value: string | undefined, close: string): void {
  if (value === undefined) {
    parts[at] = parts[at + 1] = parts[at + 2] = '';
  } else {
    parts[at] = key;
    parts[at + 1] = value;
    parts[at + 2] = close;
  }
}

/** The parts joined; the value slots emptied again. */
function joined(parts: string[], values: readonly number[]): string {
  const text = parts.join('');
  for (const i of values) parts[i] = '';
  return text;
}

/** A status line, from its fields (what {@link conversationLine} writes for a status record, without the record). */
export function statusLine(id: string, status: string, at: string, seq: number | undefined, serverAt: string | undefined, reason: unknown): string {
  // Free values encoded before any slot is filled: a `toJSON` run by `JSON.stringify` may itself write a line.
  const reasonText = reason === undefined ? undefined : JSON.stringify(reason);
  const p = STATUS;
  p[1] = id;
  p[3] = status;
  p[5] = at;
  optional(p, 7, ',"seq":', seq === undefined ? undefined : num(seq), '');
  optional(p, 10, ',"serverAt":"', serverAt, '"');
  optional(p, 13, ',"reason":', reasonText, '');
  return joined(p, VALUES_STATUS);
}

/** A line of a conversation file. */
export function conversationLine(r: StatusFields | MessageFields): string {
  if (r.type === 'status') return statusLine(r.id, r.status, r.at, r.seq, r.serverAt, r.reason);
  const text = JSON.stringify(r.text);
  const meta = r.meta === undefined ? undefined : JSON.stringify(r.meta);
  const p = MESSAGE;
  p[1] = r.id;
  p[3] = r.conversationId;
  p[5] = r.direction;
  p[7] = r.from;
  p[9] = r.to;
  p[11] = text;
  optional(p, 12, ',"replyTo":"', r.replyTo, '"');
  optional(p, 15, ',"meta":', meta, '');
  p[19] = r.sentAt;
  optional(p, 21, ',"status":"', r.status, '"');
  optional(p, 24, ',"seq":', r.seq === undefined ? undefined : num(r.seq), '');
  optional(p, 27, ',"serverAt":"', r.serverAt, '"');
  return joined(p, VALUES_MESSAGE);
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
  const text = JSON.stringify(e.text);
  const meta = e.meta === undefined ? undefined : JSON.stringify(e.meta);
  const p = PUT;
  p[1] = e.id;
  p[3] = e.conversationId;
  p[5] = e.to;
  p[7] = text;
  optional(p, 8, ',"replyTo":"', e.replyTo, '"');
  optional(p, 11, ',"meta":', meta, '');
  p[15] = e.sentAt;
  optional(p, 17, ',"expiresAt":"', e.expiresAt, '"');
  optional(p, 20, ',"offset":', e.offset === undefined ? undefined : num(e.offset), '');
  return joined(p, VALUES_PUT);
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
  return sendFrameTextOf(f.id, f.to, f.text, f.conversationId, f.replyTo, f.meta, f.sentAt, f.after);
}

/** A `send` frame from its fields in frame order (what {@link sendFrameText} writes, without a frame object). */
export function sendFrameTextOf(
  id: string,
  to: string,
  text: string,
  conversationId: string | undefined,
  replyTo: string | undefined,
  meta: unknown,
  sentAt: string | undefined,
  after: string | undefined,
): string {
  const quoted = JSON.stringify(text);
  const metaText = meta === undefined ? undefined : JSON.stringify(meta);
  const p = SEND;
  p[1] = id;
  p[3] = to;
  p[5] = quoted;
  optional(p, 6, ',"conversationId":"', conversationId, '"');
  optional(p, 9, ',"replyTo":"', replyTo, '"');
  optional(p, 12, ',"meta":', metaText, '');
  optional(p, 15, ',"sentAt":"', sentAt, '"');
  optional(p, 18, ',"after":"', after, '"');
  return joined(p, VALUES_SEND);
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
  const p = ACK;
  p[1] = f.id;
  p[3] = num(f.seq);
  p[5] = f.at;
  return joined(p, VALUES_ACK);
}
