import { describe, expect, it } from 'vitest';
import { InvalidIdError } from '../../src/errors.js';
import { assertId, directConversationId, isDirectConversationOf, isId } from '../../src/protocol/ids.js';
import { webSocketUrl } from '../../src/protocol/url.js';

const traversal = ['..', '.', '../etc/passwd', 'a/b', 'a\\b', '/abs', '.hidden', '', ' ', 'a b', 'a\0b', 'ü', 'x'.repeat(97), 'C:foo'];

describe('ids', () => {
  it.each(traversal)('rejects %j as an agent id with InvalidIdError', (bad) => {
    expect(() => assertId('agentId', bad)).toThrow(InvalidIdError);
    expect(isId('contactId', bad)).toBe(false);
  });

  it.each(['..', '../x', 'a/b', '.git', 'x'.repeat(201), 'a+b/c'])('rejects %j as a conversation id', (bad) => {
    expect(() => assertId('conversationId', bad)).toThrow(expect.objectContaining({ code: 'INVALID_ID', kind: 'conversationId' }));
  });

  it('accepts the seed ids and common forms', () => {
    for (const ok of ['agent_001', 'user_001', 'bot.v2', 'ops-team', 'a@example.com', '7']) expect(isId('agentId', ok)).toBe(true);
    for (const ok of ['agent_001+agent_002', 'task-42', 'thread.2026.11']) expect(isId('conversationId', ok)).toBe(true);
    expect(isId('messageId', 'msg_0123456789')).toBe(true);
    expect(isId('messageId', 'short')).toBe(false);
  });

  it('rejects non-strings with a typed error naming the kind and value', () => {
    const err = (() => {
      try {
        assertId('contactId', 42);
      } catch (e) {
        return e as InvalidIdError;
      }
    })();
    expect(err).toBeInstanceOf(InvalidIdError);
    expect(err?.kind).toBe('contactId');
    expect(err?.message).toContain('42');
  });

  it('names a direct conversation the same from both ends', () => {
    expect(directConversationId('agent_002', 'agent_001')).toBe('agent_001+agent_002');
    expect(directConversationId('agent_001', 'agent_002')).toBe('agent_001+agent_002');
    expect(() => directConversationId('agent_001', '../x')).toThrow(InvalidIdError);
  });

  it('recognises a direct conversation without building its id, as directConversationId names it', () => {
    const agents = ['a', 'b', 'ab', 'a.b', 'B', 'agent_001', 'agent_0011', 'agent_002'];
    const candidates = new Set<string>(['a', 'a+', '+a', 'a+b+c', 'ab+', 'a+ab']);
    for (const x of agents) for (const y of agents) candidates.add(`${x}+${y}`);
    for (const x of agents) {
      for (const y of agents) {
        for (const c of candidates) expect(isDirectConversationOf(c, x, y)).toBe(c === directConversationId(x, y));
      }
    }
  });
});

describe('webSocketUrl', () => {
  it.each([
    ['http://im-server:8080', 'ws://im-server:8080/ws'],
    ['https://im.example.com', 'wss://im.example.com/ws'],
    ['https://im.example.com/api/', 'wss://im.example.com/api/ws'],
    ['ws://127.0.0.1:9000/custom', 'ws://127.0.0.1:9000/custom'],
  ])('maps %s to %s', (input, expected) => {
    expect(webSocketUrl(input)).toBe(expected);
  });

  it.each(['im-server:8080', 'ftp://x', 'not a url'])('rejects %s with INVALID_OPTION naming imServerUrl', (bad) => {
    expect(() => webSocketUrl(bad)).toThrow(expect.objectContaining({ code: 'INVALID_OPTION', option: 'imServerUrl' }));
  });
});
