import { createActor } from 'xstate';
import { messageMachine } from '../../machines/message.js';

export interface StatechartResult {
  /** Lifecycles kept in flight (parked in `awaitingAck`) while measuring. */
  inflight: number;
  /** Microseconds per complete lifecycle: queued -> inFlight -> acked -> delivered. */
  usPerMessage: number;
}

const logic = messageMachine.provide({ actions: { transmit: () => {}, persistStatus: () => {} } });
const NO_TIMERS = { setTimeout: () => 0, clearTimeout: () => {} };

function lifecycle(i: number) {
  return createActor(logic, { input: { id: `m${i}`, conversationId: 'a+b', to: 'b' }, clock: NO_TIMERS });
}

/**
 * The per-message cost of the ack lifecycle as the outbox runs it, with
 * `inflight` other lifecycles alive and waiting for their ack.
 */
export function statechartCost(inflight: number, count: number): StatechartResult {
  const parked = [];
  for (let i = 0; i < inflight; i++) {
    const a = lifecycle(-i - 1);
    a.start();
    a.send({ type: 'DISPATCH' });
    a.send({ type: 'SENT' });
    parked.push(a);
  }
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const a = lifecycle(i);
    a.start();
    a.send({ type: 'DISPATCH' });
    a.send({ type: 'SENT' });
    a.send({ type: 'ACK', seq: i + 1, at: '2026-01-01T00:00:00.000Z' });
    a.send({ type: 'RECEIPT', at: '2026-01-01T00:00:01.000Z' });
  }
  const usPerMessage = ((performance.now() - t0) * 1000) / count;
  for (const a of parked) a.stop();
  return { inflight, usPerMessage };
}
