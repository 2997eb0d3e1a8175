import { A, B, startPair, type System } from '../lib/pair.js';
import { cpuMicros } from '../lib/servers.js';

export interface ThroughputResult {
  /** Messages per second, from the first send until every message was both acked and received. */
  msgPerSec: number;
  /** Milliseconds until the last ack and the last receipt. */
  ackedMs: number;
  receivedMs: number;
  /** CPU time per message of each process (user + system, microseconds), where the platform tells (Linux). */
  cpuUsPerMessage?: { sender: number; server: number; receiver: number };
  /** The sender's peak RSS during the measured burst, above its RSS when the burst began (bytes): its working set under load. */
  senderPeakRssGrowth: number;
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
    const pids = [pair.a.pid, pair.server.pid, pair.b.pid];
    const rssBefore = await pair.a.call<number>('startSampling');
    const cpuBefore = await Promise.all(pids.map(cpuMicros));
    const received = pair.b.call<number>('expect', { count: warmup + count });
    const { startedAt, ackedAt } = await pair.a.call<{ startedAt: number; ackedAt: number }>('burst', { to: B, count });
    const receivedAt = await received;
    const cpuAfter = await Promise.all(pids.map(cpuMicros));
    const peakRss = await pair.a.call<number>('stopSampling');
    const end = Math.max(ackedAt, receivedAt);
    const cpu = cpuAfter.map((after, i) => (after === undefined || cpuBefore[i] === undefined ? undefined : (after - cpuBefore[i]!) / count));
    return {
      msgPerSec: (count / (end - startedAt)) * 1000,
      ackedMs: ackedAt - startedAt,
      receivedMs: receivedAt - startedAt,
      senderPeakRssGrowth: peakRss - rssBefore,
      ...(cpu.every((c) => c !== undefined) ? { cpuUsPerMessage: { sender: cpu[0]!, server: cpu[1]!, receiver: cpu[2]! } } : {}),
    };
  } finally {
    await pair.stop();
  }
}

export { A };
