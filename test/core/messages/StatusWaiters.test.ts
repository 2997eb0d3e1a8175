import { describe, expect, it } from 'vitest';
import type { StatusUpdate } from '../../../src/core/messages/Outbox.js';
import { StatusWaiters } from '../../../src/core/messages/StatusWaiters.js';

const AT = '2026-01-01T00:00:00.000Z';
const id = (i: number) => `msg_${String(i).padStart(8, '0')}`;
const acked = (i: number): StatusUpdate => ({ id: id(i), conversationId: `agent_a+agent_${i % 3}`, status: 'acked', at: AT, seq: i + 1, serverAt: AT });

describe('StatusWaiters', () => {
  it('holds the updates of the last messages only, and remembers the conversation of many more', async () => {
    const waiters = new StatusWaiters({ recent: 4, remembered: 10 });
    for (let i = 0; i < 30; i++) waiters.update(acked(i));
    // At least the last recent / 2 updates are held: a late wait resolves at once.
    expect([28, 29].map((i) => waiters.knows(id(i)))).toEqual([true, true]);
    await expect(waiters.wait(id(29), 'acked')).resolves.toMatchObject({ id: id(29), seq: 30 });
    expect(waiters.knows(id(20))).toBe(false);
    // At least the last remembered / 2 conversations, and none from long before.
    expect([25, 26, 27, 28, 29].map((i) => waiters.conversationOf(id(i)))).toEqual([25, 26, 27, 28, 29].map((i) => `agent_a+agent_${i % 3}`));
    expect(waiters.conversationOf(id(3))).toBeUndefined();
    expect(waiters.conversationOf('msg_unknown1')).toBeUndefined();
  });

  it('remembers whether a message had its final update, after the update itself is gone', () => {
    const waiters = new StatusWaiters({ recent: 2, remembered: 100 });
    waiters.update(acked(1));
    waiters.update({ ...acked(2), status: 'delivered', deliveredAt: AT });
    waiters.update({ id: id(3), conversationId: 'agent_a+agent_0', status: 'failed', at: AT, error: { code: 'TIMEOUT', message: 'no ack' } });
    // An acked learnt afterwards (a history line read before the final one landed) does not undo it.
    waiters.update(acked(2));
    for (let i = 10; i < 20; i++) waiters.update(acked(i));
    expect([1, 2, 3].map((i) => [waiters.knows(id(i)), waiters.settled(id(i))])).toEqual([
      [false, false],
      [false, true],
      [false, true],
    ]);
  });
});
