import { messageMachine } from '../../machines/message.js';
import { createLifecycle } from '../../src/core/statecharts/lifecycle.js';

export interface StatechartResult {
  /** Lifecycles kept in flight (parked in `awaitingAck`) while measuring. */
  inflight: number;
  /** Microseconds per complete lifecycle: queued -> inFlight -> acked -> delivered. */
  usPerMessage: number;
}

const logic = messageMachine.provide({ actions: { transmit: () => {}, persistStatus: () => {} } });
const NO_TIMERS = { setTimeout: () => 0, clearTimeout: () => {} };

/** As the outbox creates them: lean actors unless an inspector is attached (`inspected`). */
function lifecycle(i: number, inspected: boolean) {
  return createLifecycle(logic, { id: `message:m${i}`, input: { id: `m${i}`, conversationId: 'a+b', to: 'b' }, clock: NO_TIMERS, inspect: inspected ? () => {} : undefined });
}

/**
 * The per-message cost of the ack lifecycle as the outbox runs it, with
 * `inflight` other lifecycles alive and waiting for their ack.
 */
export function statechartCost(inflight: number, count: number, inspected = false): StatechartResult {
  const parked = [];
  for (let i = 0; i < inflight; i++) {
    const a = lifecycle(-i - 1, inspected);
    a.start();
    a.send({ type: 'DISPATCH' });
    a.send({ type: 'SENT' });
    parked.push(a);
  }
  // Untimed first pass: the parked lifecycles, just created, are promoted out of the young
  // generation by the collections it triggers, so the timed pass sees the steady state.
  run(count, inspected);
  const t0 = performance.now();
  run(count, inspected);
  const usPerMessage = ((performance.now() - t0) * 1000) / count;
  for (const a of parked) a.stop();
  return { inflight, usPerMessage };
}

function run(count: number, inspected: boolean): void {
  for (let i = 0; i < count; i++) {
    const a = lifecycle(i, inspected);
    a.start();
    a.send({ type: 'DISPATCH' });
    a.send({ type: 'SENT' });
    a.send({ type: 'ACK', seq: i + 1, at: '2026-01-01T00:00:00.000Z' });
    a.send({ type: 'RECEIPT', at: '2026-01-01T00:00:01.000Z' });
  }
}
