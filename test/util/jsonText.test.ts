import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AgentId, ConversationId, MessageId } from '../../src/protocol/ids.js';
import { ackFrameText, conversationLine, putLine, quote, sendFrameText } from '../../src/util/jsonText.js';
import { random } from '../helpers/random.js';

/*
 * The hand-built JSON of the per-message records must be exactly what
 * JSON.stringify writes for the same fields in schema order, for every value
 * a field can hold: free text that needs escaping included, and ids, times
 * and enums in every shape their formats admit.
 */

const strings = [
  'msg_5f1c9a7e2b4d',
  '2026-03-02T09:15:04.512Z',
  'agent_001+agent_002',
  '',
  'say "hi"',
  'back\\slash',
  'line\nbreak',
  'tab\there',
  '\u0001\u001f\u007f',
  'café 中文 😀',
  'lone \ud800 surrogate',
  'line\u2028separator',
  '</script>',
];
/** Ids, times and enums, as their formats admit them: written as they are. */
const plain = ['msg_5f1c9a7e2b4d', 'mlx2k0a1_AbCdEfGhIjKl', '2026-03-02T09:15:04.512Z', 'agent_001+agent_002', 'agent.x@host-1', 'A', 'delivered'];
const numbers = [1, 42, 2 ** 31, Number.MAX_SAFE_INTEGER, 0.5, Number.NaN, Number.POSITIVE_INFINITY];
const metas = [undefined, {}, { ticket: 4711, tags: ['a', 'b'], nested: { ok: true, none: null } }, { 'odd "key"': 'v\n' }];

const rnd = random(20261124);
const pick = <T>(list: readonly T[]): T => list[Math.floor(rnd() * list.length)]!;
const maybe = <T>(value: T): T | undefined => (rnd() < 0.5 ? undefined : value);

/** The object with only its defined fields, in the order given: what the encoder must match. */
function ordered(fields: Array<[string, unknown]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of fields) if (v !== undefined) out[k] = v;
  return out;
}

const VARIANTS = 3000;

describe('hand-built JSON of the per-message records', () => {
  it('writes ids, times and enums as they are only because their formats admit nothing JSON escapes', () => {
    const escaped = ['"', '\\', '\n', '\t', '\u0001', '\u001f', '\ud800', '\u2028', 'é'];
    const formats: Array<[string, z.ZodType, string]> = [
      ['message id', MessageId, 'msg_5f1c9a7e2b4d'],
      ['agent id', AgentId, 'agent_001'],
      ['conversation id', ConversationId, 'agent_001+agent_002'],
      ['time', z.iso.datetime(), '2026-03-02T09:15:04.512Z'],
    ];
    for (const [name, schema, valid] of formats) {
      expect(schema.safeParse(valid).success, name).toBe(true);
      expect(JSON.stringify(valid), name).toBe(`"${valid}"`);
      for (const c of escaped) {
        for (const candidate of [c + valid, valid + c, valid.slice(0, 3) + c + valid.slice(4)]) {
          expect(schema.safeParse(candidate).success, `${name} ${JSON.stringify(candidate)}`).toBe(false);
        }
      }
    }
  });

  it('quotes a string as JSON.stringify does', () => {
    for (const s of strings) expect(quote(s)).toBe(JSON.stringify(s));
  });

  it('writes status lines as JSON.stringify would', () => {
    for (let i = 0; i < VARIANTS; i++) {
      const r = ordered([
        ['type', 'status'],
        ['id', pick(plain)],
        ['status', pick(['acked', 'delivered', 'failed', 'cancelled'])],
        ['at', pick(plain)],
        ['seq', maybe(pick(numbers))],
        ['serverAt', maybe(pick(plain))],
        ['reason', maybe({ code: pick(strings), message: pick(strings), ...(rnd() < 0.5 ? {} : { nack: pick(strings) }) })],
      ]);
      const line = conversationLine(r as never);
      expect(line).toBe(JSON.stringify(r));
    }
  });

  it('writes message lines as JSON.stringify would', () => {
    for (let i = 0; i < VARIANTS; i++) {
      const r = ordered([
        ['type', 'message'],
        ['id', pick(plain)],
        ['conversationId', pick(plain)],
        ['direction', pick(['in', 'out'])],
        ['from', pick(plain)],
        ['to', pick(plain)],
        ['text', pick(strings)],
        ['replyTo', maybe(pick(plain))],
        ['meta', pick(metas)],
        ['sentAt', pick(plain)],
        ['status', maybe(pick(['queued', 'sending', 'acked', 'delivered']))],
        ['seq', maybe(pick(numbers))],
        ['serverAt', maybe(pick(plain))],
      ]);
      expect(conversationLine(r as never)).toBe(JSON.stringify(r));
    }
  });

  it('writes outbox puts as JSON.stringify would, id first', () => {
    for (let i = 0; i < VARIANTS; i++) {
      const entry = ordered([
        ['id', pick(plain)],
        ['conversationId', pick(plain)],
        ['to', pick(plain)],
        ['text', pick(strings)],
        ['replyTo', maybe(pick(plain))],
        ['meta', pick(metas)],
        ['sentAt', pick(plain)],
        ['expiresAt', maybe(pick(plain))],
        ['offset', maybe(pick(numbers))],
      ]);
      const line = putLine(entry as never);
      expect(line).toBe(JSON.stringify({ op: 'put', entry }));
      expect(line.startsWith(`{"op":"put","entry":{"id":${JSON.stringify(entry.id)}`)).toBe(true);
    }
  });

  it('writes send frames as JSON.stringify would', () => {
    for (let i = 0; i < VARIANTS; i++) {
      const frame = ordered([
        ['type', 'send'],
        ['id', pick(plain)],
        ['to', pick(plain)],
        ['text', pick(strings)],
        ['conversationId', maybe(pick(plain))],
        ['replyTo', maybe(pick(plain))],
        ['meta', pick(metas)],
        ['sentAt', maybe(pick(plain))],
        ['after', maybe(pick(plain))],
      ]);
      expect(sendFrameText(frame as never)).toBe(JSON.stringify(frame));
    }
  });

  it('writes ack frames as JSON.stringify would', () => {
    for (let i = 0; i < VARIANTS; i++) {
      const frame = { type: 'ack' as const, id: pick(plain), seq: pick(numbers), at: pick(plain) };
      expect(ackFrameText(frame)).toBe(JSON.stringify(frame));
    }
  });

  it('writes only the fields it knows, whatever else an object carries', () => {
    const record = { type: 'status' as const, id: 'msg_00000001', status: 'acked', at: '2026-03-02T09:15:04.512Z', extra: 'dropped' };
    expect(JSON.parse(conversationLine(record))).toEqual({ type: 'status', id: 'msg_00000001', status: 'acked', at: '2026-03-02T09:15:04.512Z' });
  });

  it('writes a line whole when encoding its metadata writes another line (the writers share their part arrays)', () => {
    // A toJSON that writes lines of every shape while the outer one is being built.
    const nested = {
      toJSON: () => {
        sendFrameText({ type: 'send', id: 'msg_inner', to: 'agent_inner', text: 'inner text', meta: { inner: true } });
        putLine({ id: 'msg_inner', conversationId: 'a+b', to: 'b', text: 'inner', meta: { x: 1 }, sentAt: 'T', offset: 3 });
        conversationLine({ type: 'status', id: 'msg_inner', status: 'failed', at: 'T', reason: { code: 'X' } });
        return { ok: 1 };
      },
    };
    const frame = { type: 'send' as const, id: 'msg_outer', to: 'agent_outer', text: 'outer text', meta: { n: nested }, sentAt: 'S', after: 'msg_prev' };
    expect(sendFrameText(frame)).toBe(JSON.stringify(frame));
    const entry = { id: 'msg_outer', conversationId: 'a+c', to: 'c', text: 'outer', meta: { n: nested }, sentAt: 'S' };
    expect(putLine(entry)).toBe(JSON.stringify({ op: 'put', entry }));
    const message = { type: 'message' as const, id: 'msg_outer', conversationId: 'a+c', direction: 'out', from: 'a', to: 'c', text: 'outer', meta: { n: nested }, sentAt: 'S', status: 'queued' };
    expect(conversationLine(message)).toBe(JSON.stringify(message));
    const status = { type: 'status' as const, id: 'msg_outer', status: 'failed', at: 'S', seq: 4, reason: { n: nested } };
    expect(conversationLine(status)).toBe(JSON.stringify(status));
  });
});
