import { B, startPair } from '../lib/pair.js';

export interface PendingResult {
  count: number;
  ms: number;
  /** Microseconds per message drained. */
  usPerMessage: number;
  /** Heap held per message waiting in the pending queue (after a full GC, all received, none drained). */
  heapPerQueued: number;
}

/**
 * A digital-employee agent (queue mode) receives `count` messages into its
 * pending queue, then drains them with `drainPendingMessages` and a handler
 * that does nothing: the cost of the queue itself.
 */
export async function pendingDrain(count: number): Promise<PendingResult> {
  const pair = await startPair('im', { window: 1000, modeB: 'queue', nodeArgs: ['--expose-gc'] });
  try {
    const before = await pair.b.call<{ heapUsed: number }>('memory');
    const received = pair.b.call('expect', { count });
    await pair.a.call('burst', { to: B, count });
    await received;
    const queued = await pair.b.call<{ heapUsed: number }>('memory');
    const { count: drained, ms } = await pair.b.call<{ count: number; ms: number }>('drainPending', {});
    if (drained !== count) throw new Error(`drained ${drained} of ${count} pending messages`);
    return { count, ms, usPerMessage: (ms * 1000) / count, heapPerQueued: (queued.heapUsed - before.heapUsed) / count };
  } finally {
    await pair.stop();
  }
}
