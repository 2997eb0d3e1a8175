import { percentile } from '../lib/stats.js';
import { B, startPair, type System } from '../lib/pair.js';

export interface LatencyResult {
  ackP50: number;
  ackP99: number;
  receiveP50: number;
  receiveP99: number;
}

/**
 * `count` one-at-a-time sends from a to b: each waits for its ack and for b
 * to receive it before the next goes. Milliseconds, send call to ack, and
 * send call to the recipient's callback (clocks of one machine).
 */
export async function latency(system: System, count: number, warmup: number): Promise<LatencyResult> {
  const pair = await startPair(system, { window: 1000 });
  try {
    const arrivals = new Map<number, number>();
    const waiting = new Map<number, () => void>();
    pair.b.on<{ index: number; at: number }>('received', ({ index, at }) => {
      arrivals.set(index, at);
      waiting.get(index)?.();
    });
    await pair.b.call('forward', { on: true });
    const ack: number[] = [];
    const receive: number[] = [];
    for (let i = 0; i < warmup + count; i++) {
      const got = arrivals.has(i) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(i, resolve));
      const { sentAt, ackedAt } = await pair.a.call<{ sentAt: number; ackedAt: number }>('sendOne', { to: B, index: i });
      await got;
      waiting.delete(i);
      if (i < warmup) continue;
      ack.push(ackedAt - sentAt);
      receive.push(arrivals.get(i)! - sentAt);
    }
    return { ackP50: percentile(ack, 0.5), ackP99: percentile(ack, 0.99), receiveP50: percentile(receive, 0.5), receiveP99: percentile(receive, 0.99) };
  } finally {
    await pair.stop();
  }
}
