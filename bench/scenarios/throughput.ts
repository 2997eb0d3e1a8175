import { A, B, startPair, type System } from '../lib/pair.js';

export interface ThroughputResult {
  /** Messages per second, from the first send until every message was both acked and received. */
  msgPerSec: number;
  /** Milliseconds until the last ack and the last receipt. */
  ackedMs: number;
  receivedMs: number;
}

/** `count` messages from a to b through `system`, with `window` unacked at most, after a warm-up. */
export async function throughput(system: System, count: number, window: number, warmup: number, nodeArgs: string[] = []): Promise<ThroughputResult> {
  const pair = await startPair(system, { window, nodeArgs });
  try {
    await pair.b.call('forward', { on: false });
    if (warmup > 0) {
      const warm = pair.b.call('expect', { count: warmup });
      await pair.a.call('burst', { to: B, count: warmup });
      await warm;
    }
    const received = pair.b.call<number>('expect', { count: warmup + count });
    const { startedAt, ackedAt } = await pair.a.call<{ startedAt: number; ackedAt: number }>('burst', { to: B, count });
    const receivedAt = await received;
    const end = Math.max(ackedAt, receivedAt);
    return { msgPerSec: (count / (end - startedAt)) * 1000, ackedMs: ackedAt - startedAt, receivedMs: receivedAt - startedAt };
  } finally {
    await pair.stop();
  }
}

export { A };
