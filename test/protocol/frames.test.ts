import { describe, expect, it } from 'vitest';
import { decodeClientFrame, decodeServerFrame } from '../../src/protocol/frames.js';

describe('frame decoding', () => {
  it('decodes every client frame type', () => {
    const frames = [
      { type: 'hello', protocol: 1, agentId: 'agent_001', token: 't', resume: { epoch: 'e', ackedUpTo: 3 } },
      { type: 'send', id: 'msg_00000001', to: 'agent_002', text: 'hi', conversationId: 'task-1', replyTo: 'msg_00000000', meta: { a: [1, null] } },
      { type: 'deliver_ack', upTo: 7 },
      { type: 'ping', t: 1 },
    ];
    for (const f of frames) expect(decodeClientFrame(JSON.stringify(f))).toEqual({ ok: true, frame: f });
  });

  it('classifies problems: bad_frame, unknown_type, invalid_frame naming the field', () => {
    expect(decodeClientFrame('{')).toMatchObject({ ok: false, code: 'bad_frame' });
    expect(decodeClientFrame('"hello"')).toMatchObject({ ok: false, code: 'bad_frame' });
    expect(decodeClientFrame('{"no":"type"}')).toMatchObject({ ok: false, code: 'invalid_frame' });
    expect(decodeClientFrame('{"type":"welcome"}')).toMatchObject({ ok: false, code: 'unknown_type', type: 'welcome' });
    const bad = decodeClientFrame('{"type":"deliver_ack","upTo":-1}');
    expect(bad).toMatchObject({ ok: false, code: 'invalid_frame', type: 'deliver_ack' });
    expect(!bad.ok && bad.message).toContain('upTo');
  });

  it('validates server frames on the client side too', () => {
    expect(decodeServerFrame('{"type":"ack","id":"msg_00000001","seq":1,"at":"2026-01-01T00:00:00.000Z"}').ok).toBe(true);
    expect(decodeServerFrame('{"type":"ack","id":"msg_00000001","seq":0,"at":"yesterday"}')).toMatchObject({ ok: false, code: 'invalid_frame' });
    expect(decodeServerFrame('{"type":"hello"}')).toMatchObject({ ok: false, code: 'unknown_type' });
  });
});
