import { percentile } from '../lib/stats.js';
import { B, startPair, type System } from '../lib/pair.js';

export interface LatencyResult {
  ackP50: number;
  ackP99: number;
  receiveP50: number;
  receiveP99: number;
  /** The same figures over `count` more sends, once `settle` more have gone unmeasured. */
  steadyAckP50: number;
  steadyAckP99: number;
  steadyReceiveP50: number;
  steadyReceiveP99: number;
}

/**
 * One-at-a-time sends from a to b: each waits for its ack and for b to
 * receive it before the next goes. Milliseconds, send call to ack, and send
 * call to the recipient's callback (clocks of one machine).
 *
 * Two measured stretches of `count` sends: the first after `warmup` sends,
 * while V8 is still optimising the path on its background threads (on two
 * cores that work delays the wake-ups of the processes under test), and a
 * second after `settle` more, when it has mostly done so.
 */
export async function latency(system: System, count: number, warmup: number, settle: number): Promise<LatencyResult> {
  const pair = await startPair(system, { window: 1000 });
  try {
    const arrivals = new Map<number, number>();
    const waiting = new Map<number, () => void>();
    pair.b.on<{ index: number; at: number }>('received', ({ index, at }) => {
      arrivals.set(index, at);
      waiting.get(index)?.();
    });
    await pair.b.call('forward', { on: true });
    let next = 0;
    const run = async (sends: number, measure: boolean) => {
      const ack: number[] = [];
      const receive: number[] = [];
      for (const end = next + sends; next < end; next++) {
        const i = next;
        const got = arrivals.has(i) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(i, resolve));
        const { sentAt, ackedAt } = await pair.a.call<{ sentAt: number; ackedAt: number }>('sendOne', { to: B, index: i });
        await got;
        waiting.delete(i);
        if (measure) {
          ack.push(ackedAt - sentAt);
          receive.push(arrivals.get(i)! - sentAt);
        }
        arrivals.delete(i);
      }
      return { p50: percentile(ack, 0.5), p99: percentile(ack, 0.99), receiveP50: percentile(receive, 0.5), receiveP99: percentile(receive, 0.99) };
    };
    await run(warmup, false);
    const cold = await run(count, true);
    await run(settle, false);
    const steady = await run(count, true);
    return {
      ackP50: cold.p50,
      ackP99: cold.p99,
      receiveP50: cold.receiveP50,
      receiveP99: cold.receiveP99,
      steadyAckP50: steady.p50,
      steadyAckP99: steady.p99,
      steadyReceiveP50: steady.receiveP50,
      steadyReceiveP99: steady.receiveP99,
    };
  } finally {
    await pair.stop();
  }
}
