import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createMessageId } from '../../../src/core/messages/messageId.js';
import { isId } from '../../../src/protocol/ids.js';

describe('createMessageId', () => {
  it('makes valid ids, distinct across a burst in the same millisecond and across pool refills', () => {
    const now = Date.UTC(2026, 10, 24);
    const ids = Array.from({ length: 20_000 }, () => createMessageId(now));
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids.slice(0, 1000)) expect(isId('messageId', id)).toBe(true);
    expect(ids[0]!.startsWith(`m${now.toString(36)}_`)).toBe(true);
    expect(createMessageId(now + 1).startsWith(`m${(now + 1).toString(36)}_`)).toBe(true);
  });

  it('encodes given random bytes as base64url', () => {
    expect(createMessageId(0, new Uint8Array([0, 0, 0, 255, 255, 255, 0, 0, 0]))).toBe('m0_AAAA____AAAA');
    for (let i = 0; i < 2000; i++) {
      const random = randomBytes(9);
      const now = Date.now() - i * 7919;
      expect(createMessageId(now, random)).toBe(`m${now.toString(36)}_${random.toString('base64url')}`);
    }
  });
});
