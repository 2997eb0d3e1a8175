import { createHash } from 'node:crypto';
import stableStringify from 'fast-json-stable-stringify';
import { describe, expect, it } from 'vitest';
import { contentDigest } from '../../src/server/Exchange.js';

/** The digest as first defined: stored digests were made this way, so resends must still match them. */
function reference(to: string, conversationId: string, frame: { text: string; replyTo?: string; meta?: Record<string, unknown> }): string {
  const canonical = stableStringify({ to, conversationId, text: frame.text, replyTo: frame.replyTo ?? null, meta: frame.meta ?? null });
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 22);
}

describe('contentDigest', () => {
  type Frame = { text: string; replyTo?: string; meta?: Record<string, never> | Record<string, unknown> };
  const cases: Frame[] = [
    { text: 'hello' },
    { text: 'quotes " and \\ backslashes, \u0001 control, \u2028 separators, 漢字 and 🙂' },
    { text: '', replyTo: 'm-1' },
    { text: 'with meta', meta: { z: 1, a: { y: [3, { b: 2, a: 1 }], x: null }, m: 'é' } },
    { text: 'both', replyTo: 'm-2', meta: {} },
  ];

  it.each(cases)('is the digest of the stable JSON of the message (%#)', (frame) => {
    expect(contentDigest('agent_b', 'agent_a+agent_b', frame as Parameters<typeof contentDigest>[2])).toBe(reference('agent_b', 'agent_a+agent_b', frame));
  });

  it('tells different content, recipients and conversations apart', () => {
    const base = contentDigest('b', 'a+b', { text: 'x' });
    expect(contentDigest('c', 'a+b', { text: 'x' })).not.toBe(base);
    expect(contentDigest('b', 'topic', { text: 'x' })).not.toBe(base);
    expect(contentDigest('b', 'a+b', { text: 'y' })).not.toBe(base);
    expect(contentDigest('b', 'a+b', { text: 'x', meta: {} })).not.toBe(base);
  });
});
