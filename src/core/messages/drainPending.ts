import { IMClientError } from '../../errors.js';
import { deferred } from '../../util/deferred.js';
import type { PendingMessage, PendingQueue } from './PendingQueue.js';

/** Largest batch one worker claims at once. */
const MAX_DRAIN_BATCH = 64;

/** How {@link drainPending} runs (options already validated). */
export interface DrainSettings {
  concurrency: number;
  leaseMs: number;
  /** Return once the queue is empty instead of waiting for more. */
  untilEmpty: boolean;
  signal?: AbortSignal | undefined;
  /** True once the drain must stop (aborted, or the client is closing). */
  stopped: () => boolean;
  /** Reports a handler that threw, or an ack that could not be written. */
  warn: (warning: { kind: 'listener' | 'storage'; message: string }) => void;
}

/**
 * Works through the pending queue: `concurrency` workers claim messages, call
 * `handler` on each, acknowledge those it finished and release those it threw
 * on (after a pause that grows with the message's attempts). Resolves to how
 * many were processed once stopped (or, with `untilEmpty`, once the queue is
 * empty and nothing is being retried or acknowledged). A claim that cannot
 * be written stops every worker (unstarted claims go back) and rejects with
 * that error once the running handlers are done.
 */
export async function drainPending(pending: PendingQueue, handler: (message: PendingMessage) => unknown, settings: DrainSettings): Promise<number> {
  const { concurrency, leaseMs, untilEmpty, signal, warn } = settings;
  let failure: { error: unknown } | undefined;
  const stopped = () => failure !== undefined || settings.stopped();
  // Acks being written: the next claim does not wait for them (they share its fsync); the result does.
  const acking = new Set<Promise<void>>();
  /** Messages whose handler threw, waiting out their pause before they go back: given back at once if the drain stops. */
  const pausing = new Map<ReturnType<typeof setTimeout>, () => Promise<void>>();
  let retrying = 0;
  let processed = 0;
  let busy = 0;
  // Resolved (and replaced) whenever a worker finishes a batch or a failed message goes back.
  let changed = deferred();
  const signalChange = () => {
    changed.resolve();
    changed = deferred();
  };

  const run = async (key: string, message: PendingMessage): Promise<void> => {
    try {
      await handler(message);
    } catch (err) {
      // Give it back after a pause that grows with its attempts, so a message that always
      // fails is retried at a bounded pace instead of in a tight loop.
      const pause = Math.min(leaseMs, 250 * 2 ** Math.min(10, message.pending.attempts - 1));
      warn({ kind: 'listener', message: `pending message ${message.id} handler threw: ${String(err)}; retried in ${pause} ms` });
      retrying++;
      // Only the claim this handler had: if it lapsed meanwhile, the message is back in the queue,
      // perhaps claimed by another worker, whose claim must not be released under it.
      const giveBack = () => (pending.holds(key, message.pending.attempts) ? pending.release([key]) : Promise.resolve()).catch(() => {});
      const timer = setTimeout(() => {
        pausing.delete(timer);
        retrying--;
        void giveBack().finally(signalChange);
      }, pause).unref();
      pausing.set(timer, giveBack);
      return;
    }
    // Given back by the handler ("not now"), or claimed again since (its lease lapsed, or it was
    // given back, and another took it: that claim acknowledges it when its own handler is done).
    if (pending.givenBack(key, message.pending.attempts) || pending.claimedAgain(key, message.pending.attempts)) return;
    const ack: Promise<void> = pending
      .ack([key])
      .then(
        () => void processed++,
        (err: unknown) => {
          // Not acknowledged on disk: the file still holds it, so it comes back after a restart (at least once).
          // After close (a handler that outlived close's wait) that is the documented outcome, not news.
          if (err instanceof IMClientError && err.code === 'CLOSED') return;
          warn({ kind: 'storage', message: `pending message ${message.id} was processed but its ack could not be written: ${String(err)}` });
        },
      )
      .finally(() => {
        acking.delete(ack);
        signalChange();
      });
    acking.add(ack);
  };

  /**
   * One of `concurrency` workers: claims a batch (one fsync for all of it),
   * runs the handler on each in turn. The batch doubles while batches take
   * under a quarter of the lease, and halves otherwise, so fast handlers
   * share claims while no claim waits long enough to lapse; a message whose
   * claim lapsed anyway is skipped (it is back in the queue).
   */
  const worker = async (): Promise<void> => {
    let batch = 1;
    while (!stopped()) {
      busy++;
      let claimed: Awaited<ReturnType<PendingQueue['claimKeyed']>>;
      try {
        claimed = await pending.claimKeyed(batch, leaseMs);
      } catch (error) {
        failure ??= { error };
        // The other workers stop at their next turn (their unstarted claims go back).
        signalChange();
        return;
      } finally {
        busy--;
      }
      if (claimed.length === 0) {
        if (stopped()) break;
        if (untilEmpty && busy === 0 && retrying === 0 && acking.size === 0) return signalChange();
        await Promise.race([changed.promise, pending.waitForUnclaimed(signal).catch(() => {})]);
        continue;
      }
      busy++;
      const started = Date.now();
      for (let i = 0; i < claimed.length; i++) {
        const { key, message } = claimed[i]!;
        if (stopped()) {
          // Unstarted claims go back at once rather than when their lease ends.
          await pending.release(claimed.slice(i).map((c) => c.key)).catch(() => {});
          break;
        }
        if (pending.holds(key, message.pending.attempts)) await run(key, message);
      }
      busy--;
      signalChange();
      batch = Date.now() - started < leaseMs / 4 ? Math.min(batch * 2, MAX_DRAIN_BATCH) : Math.max(1, batch >> 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  // Stopped: what waits out a retry pause goes back now, not when its lease ends (after a restart, say).
  const giveBacks = [...pausing].map(([timer, giveBack]) => {
    clearTimeout(timer);
    retrying--;
    return giveBack();
  });
  pausing.clear();
  await Promise.all([...acking, ...giveBacks]);
  if (failure) throw failure.error;
  return processed;
}
