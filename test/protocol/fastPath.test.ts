import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { AckFrame, SendFrame } from '../../src/protocol/send.js';
import { DeliverAckFrame, DeliverFrame, ReceiptFrame } from '../../src/protocol/delivery.js';
import { fastClientFrames, fastServerFrames, type FastCheck } from '../../src/protocol/fastPath.js';
import { decodeClientMessage, decodeServerMessage } from '../../src/protocol/frames.js';

const AT = '2026-11-24T03:11:42.034Z';

/** Valid frames of each hot type, as a sender or the server writes them. */
const valid: Record<string, { schema: z.ZodType; check: FastCheck; frames: object[] }> = {
  ack: { schema: AckFrame, check: fastServerFrames.get('ack')!, frames: [{ type: 'ack', id: 'mmwu4bv0y_Au3LnF', seq: 1, at: AT }] },
  deliver_ack: { schema: DeliverAckFrame, check: fastClientFrames.get('deliver_ack')!, frames: [{ type: 'deliver_ack', upTo: 0 }, { type: 'deliver_ack', upTo: 7 }] },
  deliver: {
    schema: DeliverFrame,
    check: fastServerFrames.get('deliver')!,
    frames: [
      { type: 'deliver', seq: 3, message: { id: 'abcdefgh', from: 'a', to: 'b.c@d', conversationId: 'a+b', text: '', sentAt: AT, serverAt: AT } },
      { type: 'deliver', seq: 3, message: { id: 'abcdefgh', from: 'a', to: 'b', conversationId: 'g-1', text: 'hi', replyTo: 'zzzzzzzz', sentAt: AT, serverAt: AT } },
    ],
  },
  receipt: {
    schema: ReceiptFrame,
    check: fastServerFrames.get('receipt')!,
    frames: [{ type: 'receipt', seq: 9, by: 'b', at: AT, messages: [{ id: 'abcdefgh', conversationId: 'a+b' }, { id: 'abcdefgi', conversationId: 'a+b' }] }],
  },
  send: {
    schema: SendFrame,
    check: fastClientFrames.get('send')!,
    frames: [
      { type: 'send', id: 'abcdefgh', to: 'b', text: 'hi' },
      { type: 'send', id: 'abcdefgh', to: 'b', text: 'hi', conversationId: 'team', replyTo: 'abcdefgi', sentAt: AT, after: 'abcdefgj' },
    ],
  },
};

/** Values that break one rule or another of the wire types. */
const odd: unknown[] = [
  null, true, 0, -1, 1.5, 2 ** 53, Number.MAX_SAFE_INTEGER, '', 'x', 'a b', 'ab', 'abcdefgh', '../../etc/passwd', '-lead', '+lead',
  'a'.repeat(97), 'a'.repeat(129), 'a'.repeat(201), [], {}, [{}], { id: 'abcdefgh' },
  AT, '2026-11-24T03:11:42Z', '2026-11-24T03:11:42.123456789Z', '2026-11-24T03:11:42.034+01:00', '2026-11-24T03:11Z', '2026-11-24 03:11:42Z',
  '2024-02-29T00:00:00Z', '2026-02-29T00:00:00Z', '2026-04-31T00:00:00Z', '2026-13-01T00:00:00Z', '2026-11-24T24:00:00Z',
  { k: 1 }, [{ id: 'abcdefgh', conversationId: 'a+b' }], [{ id: 'abcdefgh', conversationId: 'a+b', extra: 1 }], [{ id: 'bad id', conversationId: 'a+b' }],
];

/** Every frame one change away from a valid one: a field dropped, replaced by an odd value, or an extra key. */
function* variants(frame: Record<string, unknown>): Generator<Record<string, unknown>> {
  yield frame;
  for (const key of Object.keys(frame)) {
    if (key === 'type') continue;
    const { [key]: _, ...rest } = frame;
    yield rest;
    for (const value of odd) yield { ...frame, [key]: value };
    const inner = frame[key];
    if (typeof inner === 'object' && inner !== null && !Array.isArray(inner)) {
      for (const v of variants(inner as Record<string, unknown>)) yield { ...frame, [key]: v };
    }
  }
  yield { ...frame, extra: 1 };
  yield { ...frame, meta: { k: 'v' } };
}

describe('the hand checks of hot frames', () => {
  for (const [type, { schema, check, frames }] of Object.entries(valid)) {
    it(`${type}: pass only what its schema accepts unchanged, and pass the usual frames`, () => {
      let passed = 0;
      let tried = 0;
      for (const frame of frames) {
        expect(check(frame as Record<string, unknown>), JSON.stringify(frame)).toBe(true);
        for (const v of variants(frame as Record<string, unknown>)) {
          tried++;
          // Through JSON, as frames arrive: no undefined values, own keys only.
          const wire = JSON.parse(JSON.stringify(v)) as Record<string, unknown>;
          if (!check(wire)) continue;
          passed++;
          const parsed = schema.safeParse(wire);
          expect(parsed.success, `the hand check passed what the schema refuses: ${JSON.stringify(wire)}`).toBe(true);
          expect(parsed.data, `the schema would change ${JSON.stringify(wire)}`).toStrictEqual(wire);
        }
      }
      // Some variants stay valid (an odd value in a free-text field, an optional dropped), most do not.
      expect(passed).toBeGreaterThan(0);
      expect(passed).toBeLessThan(tried);
    });
  }

  it('a frame the hand check turns away still decodes through its schema, or fails with its reason', () => {
    // `meta` is left to zod: the frame decodes all the same.
    const withMeta = { type: 'send', id: 'abcdefgh', to: 'b', text: 'hi', meta: { tool: 'x', n: [1, 2] } };
    const [decoded] = decodeClientMessage(JSON.stringify(withMeta));
    expect(decoded).toEqual({ ok: true, frame: withMeta });
    // An unknown key is stripped by the schema, as before.
    const [stripped] = decodeServerMessage(JSON.stringify({ type: 'ack', id: 'abcdefgh', seq: 1, at: AT, extra: true }));
    expect(stripped).toEqual({ ok: true, frame: { type: 'ack', id: 'abcdefgh', seq: 1, at: AT } });
    const [bad] = decodeServerMessage(JSON.stringify({ type: 'ack', id: 'abcdefgh', seq: 0, at: AT }));
    expect(bad).toMatchObject({ ok: false, code: 'invalid_frame', type: 'ack' });
    expect((bad as { message: string }).message).toMatch(/seq/);
  });
});
