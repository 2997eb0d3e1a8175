import { IMClientError, MessageRejectedError } from '../../errors.js';
import { RecentMap } from '../../util/RecentMap.js';
import type { StatusUpdate } from './Outbox.js';

/** The statuses a caller can wait for. */
export type AwaitableStatus = 'acked' | 'delivered';

interface Waiter {
  target: AwaitableStatus;
  resolve: (update: StatusUpdate) => void;
  reject: (err: Error) => void;
}

/** Options of {@link StatusWaiters.wait}. */
export interface WaitOptions {
  signal?: AbortSignal | undefined;
  /** Reject with code `TIMEOUT` after this long. */
  timeoutMs?: number | undefined;
}

/**
 * Lets callers await a message's `acked` or `delivered` status. A message
 * that fails or is cancelled rejects its waiters with the reason; waits can
 * be bounded by a timeout and aborted by a signal (rejecting with the
 * signal's reason), and always remove their listeners.
 */
export class StatusWaiters {
  readonly #waiting = new Map<string, Set<Waiter>>();
  /** The latest update of recently settled messages (at least the last 5,000), so a late wait still resolves. */
  readonly #recent = new RecentMap<string, StatusUpdate>(10_000);
  #closed: Error | undefined;

  wait(id: string, target: AwaitableStatus, options: WaitOptions = {}): Promise<StatusUpdate> {
    if (this.#closed) return Promise.reject(this.#closed);
    const known = this.#recent.get(id);
    if (known) {
      const outcome = settle(known, target);
      if (outcome) return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(known);
    }
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<StatusUpdate>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const set = this.#waiting.get(id);
        set?.delete(waiter);
        if (set?.size === 0) this.#waiting.delete(id);
      };
      const waiter: Waiter = {
        target,
        resolve: (u) => {
          cleanup();
          resolve(u);
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = () => waiter.reject(abortReason(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => waiter.reject(new IMClientError('TIMEOUT', `message ${id} was not ${target} within ${timeoutMs} ms`)), timeoutMs);
      }
      let set = this.#waiting.get(id);
      if (!set) this.#waiting.set(id, (set = new Set()));
      set.add(waiter);
    });
  }

  update(update: StatusUpdate): void {
    this.#recent.set(update.id, update);
    const waiters = this.#waiting.get(update.id);
    if (waiters === undefined) return;
    for (const waiter of [...waiters]) {
      const outcome = settle(update, waiter.target);
      if (outcome instanceof Error) waiter.reject(outcome);
      else if (outcome) waiter.resolve(update);
    }
  }

  /** Whether a status update is known for this id. */
  knows(id: string): boolean {
    return this.#recent.has(id);
  }

  /** Rejects every wait, and every later one, with `err` (the client is closing). */
  rejectAll(err: Error): void {
    this.#closed = err;
    for (const set of [...this.#waiting.values()]) for (const w of [...set]) w.reject(err);
  }
}

/** True when `update` satisfies `target`, an Error when it never will, false when it may later. */
function settle(update: StatusUpdate, target: AwaitableStatus): true | false | Error {
  switch (update.status) {
    case 'delivered':
      return true;
    case 'acked':
      return target === 'acked';
    case 'cancelled':
      return new IMClientError('MESSAGE_CANCELLED', `message ${update.id} was cancelled`);
    case 'failed': {
      const e = update.error;
      if (e?.nack) return new MessageRejectedError(update.id, e.nack, e.message, e.code === 'MESSAGE_TOO_LARGE' ? 'MESSAGE_TOO_LARGE' : 'MESSAGE_REJECTED');
      const code = e?.code === 'MESSAGE_EXPIRED' ? 'MESSAGE_EXPIRED' : 'TIMEOUT';
      return new IMClientError(code, `message ${update.id} failed: ${e?.message ?? 'unknown reason'}`);
    }
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new IMClientError('ABORTED', 'the operation was aborted');
}
