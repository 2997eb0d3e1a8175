import { now } from '../lib/stats.js';
import { B, startPair } from '../lib/pair.js';

export interface OfflineResult {
  /** Messages per second from `connect()` until every queued message was acked and received. */
  drainMsgPerSec: number;
  drainMs: number;
  /** Memory held per queued message while offline (after a full GC), bytes. */
  heapPerQueued: number;
  rssPerQueued: number;
  /** Peak RSS growth during queueing and draining, per queued message, bytes. */
  peakRssPerQueued: number;
  /** The same, while queueing only (what holding the queue costs). */
  queueingPeakRssPerQueued: number;
}

/**
 * The sender queues `count` messages while offline (durable in its outbox),
 * then connects; the recipient is online throughout. `nodeArgs` go to every
 * process (a heap bound, say).
 */
export async function offlineDrain(count: number, window: number, nodeArgs: string[] = []): Promise<OfflineResult> {
  const pair = await startPair('im', { window, connectA: false, nodeArgs: ['--expose-gc', ...nodeArgs] });
  try {
    const before = await pair.a.call<{ rss: number; heapUsed: number }>('memory');
    await pair.a.call('startSampling');
    await pair.a.call('queue', { to: B, count });
    const queueingPeak = await pair.a.call<number>('stopSampling');
    await pair.a.call('startSampling');
    const queued = await pair.a.call<{ rss: number; heapUsed: number }>('memory');
    const received = pair.b.call<number>('expect', { count });
    const acked = pair.a.call<number>('acked', { total: count });
    const t0 = now();
    await pair.a.call('connect');
    const end = Math.max(await received, await acked);
    const peak = Math.max(queueingPeak, await pair.a.call<number>('stopSampling'));
    return {
      drainMsgPerSec: (count / (end - t0)) * 1000,
      drainMs: end - t0,
      heapPerQueued: (queued.heapUsed - before.heapUsed) / count,
      rssPerQueued: (queued.rss - before.rss) / count,
      peakRssPerQueued: (peak - before.rss) / count,
      queueingPeakRssPerQueued: (queueingPeak - before.rss) / count,
    };
  } finally {
    await pair.stop();
  }
}
