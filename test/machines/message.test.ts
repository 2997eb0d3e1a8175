import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { messageMachine } from '../../machines/message.js';
import { coverStates } from './stateCoverage.js';

const track = coverStates(messageMachine);

function start(input: Partial<Parameters<typeof createActor<typeof messageMachine>>[1] & object> = {}, extra: Partial<{ maxAttempts: number; expiresAt: number | null; ackTimeoutMs: number }> = {}) {
  const calls: string[] = [];
  const actor = createActor(
    messageMachine.provide({
      actions: {
        transmit: () => void calls.push('transmit'),
        persistStatus: (_, { status }) => void calls.push(`persist:${status}`),
      },
    }),
    { input: { id: 'msg_00000001', conversationId: 'a+b', to: 'b', ...extra }, ...input },
  );
  track(actor);
  actor.start();
  return { actor, calls };
}

describe('message machine', () => {
  it('goes queued -> inFlight (sending -> awaitingAck) -> acked -> delivered, persisting acked and delivered', () => {
    const { actor, calls } = start();
    expect(actor.getSnapshot().value).toBe('queued');
    actor.send({ type: 'DISPATCH' });
    expect(actor.getSnapshot().value).toEqual({ inFlight: 'sending' });
    actor.send({ type: 'SENT' });
    expect(actor.getSnapshot().value).toEqual({ inFlight: 'awaitingAck' });
    expect(actor.getSnapshot().context.ackDeadline).toBeGreaterThan(Date.now());
    actor.send({ type: 'ACK', seq: 7, at: '2026-01-01T00:00:00.000Z' });
    expect(actor.getSnapshot().value).toBe('acked');
    expect(actor.getSnapshot().context).toMatchObject({ seq: 7, serverAt: '2026-01-01T00:00:00.000Z', attempts: 1, ackDeadline: null });
    actor.send({ type: 'RECEIPT', at: '2026-01-01T00:00:01.000Z' });
    expect(actor.getSnapshot().value).toBe('delivered');
    expect(actor.getSnapshot().status).toBe('done');
    expect(calls).toEqual(['transmit', 'persist:acked', 'persist:delivered']);
  });

  it('returns in-flight messages to queued when the connection is lost', () => {
    const { actor } = start();
    actor.send({ type: 'DISPATCH' });
    actor.send({ type: 'CONNECTION_LOST' });
    expect(actor.getSnapshot().value).toBe('queued');
    actor.send({ type: 'DISPATCH' });
    actor.send({ type: 'SENT' });
    actor.send({ type: 'CONNECTION_LOST' });
    expect(actor.getSnapshot().value).toBe('queued');
    expect(actor.getSnapshot().context).toMatchObject({ attempts: 2, failures: 0 });
  });

  it('retries after an ack timeout with the same id, and fails after maxAttempts', async () => {
    const { actor, calls } = start({}, { maxAttempts: 2, ackTimeoutMs: 10 });
    actor.send({ type: 'DISPATCH' });
    actor.send({ type: 'SENT' });
    await new Promise((r) => setTimeout(r, 30));
    expect(actor.getSnapshot().value).toBe('queued');
    actor.send({ type: 'DISPATCH' });
    actor.send({ type: 'SENT' });
    await new Promise((r) => setTimeout(r, 30));
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().context.error).toMatchObject({ code: 'TIMEOUT' });
    expect(calls).toEqual(['transmit', 'transmit', 'persist:failed']);
  });

  it('retries a retryable nack without counting it, and fails on a permanent one with the reason', () => {
    const { actor } = start({}, { maxAttempts: 1 });
    actor.send({ type: 'DISPATCH' });
    actor.send({ type: 'SENT' });
    for (let i = 0; i < 3; i++) {
      actor.send({ type: 'NACK', code: 'rate_limited', message: 'slow down', retryable: true });
      expect(actor.getSnapshot().value).toBe('queued');
      actor.send({ type: 'DISPATCH' });
    }
    expect(actor.getSnapshot().context.failures).toBe(0);
    actor.send({ type: 'NACK', code: 'unknown_recipient', message: 'no such agent', retryable: false });
    expect(actor.getSnapshot().value).toBe('failed');
    expect(actor.getSnapshot().context.error).toEqual({ code: 'MESSAGE_REJECTED', nack: 'unknown_recipient', message: 'no such agent' });
  });

  it('can be cancelled only while queued', () => {
    const queued = start();
    queued.actor.send({ type: 'CANCEL' });
    expect(queued.actor.getSnapshot().value).toBe('cancelled');
    expect(queued.calls).toEqual(['persist:cancelled']);
    const sending = start();
    sending.actor.send({ type: 'DISPATCH' });
    sending.actor.send({ type: 'CANCEL' });
    expect(sending.actor.getSnapshot().value).toEqual({ inFlight: 'sending' });
  });

  it('fails an expired message instead of sending it', () => {
    const onDispatch = start({}, { expiresAt: Date.now() - 1 });
    onDispatch.actor.send({ type: 'DISPATCH' });
    expect(onDispatch.actor.getSnapshot().value).toBe('failed');
    expect(onDispatch.calls).toEqual(['persist:failed']);
    const swept = start({}, { expiresAt: Date.now() - 1 });
    swept.actor.send({ type: 'EXPIRE' });
    expect(swept.actor.getSnapshot().context.error).toMatchObject({ code: 'MESSAGE_EXPIRED' });
  });

  it('takes an ack that arrives before the write completed (it proves the frame was written)', () => {
    const { actor } = start();
    actor.send({ type: 'DISPATCH' });
    actor.send({ type: 'ACK', seq: 1, at: '2026-01-01T00:00:00.000Z' });
    expect(actor.getSnapshot().value).toBe('acked');
  });

  it('takes a receipt that overtakes the ack (after a crash lost the ack)', () => {
    const { actor, calls } = start();
    actor.send({ type: 'RECEIPT', at: '2026-01-01T00:00:01.000Z' });
    expect(actor.getSnapshot().value).toBe('delivered');
    expect(actor.getSnapshot().context.deliveredAt).toBe('2026-01-01T00:00:01.000Z');
    expect(calls).toEqual(['persist:delivered']);
  });
});
