import { IMClientError, MessageRejectedError } from '../../errors.js';
import { OffHeapIdMap } from '../../util/OffHeapIdMap.js';
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
  /**
   * The latest update of the messages updated last (at least `recent / 2` of them), so a late
   * wait resolves at once. Kept few: every update held on V8's heap while the client sends at
   * full speed costs up to four times its size in memory (the old generation is sized at a
   * multiple of what survives), and 10,000 of them cost a long queue's drain 140 bytes per message.
   */
  readonly #recent: RecentMap<string, StatusUpdate>;
  /**
   * The conversation of each message updated in this run (at least the last `remembered / 2`),
   * outside the heap, in two generations: where a wait finds the history line of a message
   * whose update is no longer held. Conversation ids are numbered in `#names`.
   */
  #current = new OffHeapIdMap();
  #previous = new OffHeapIdMap();
  readonly #generation: number;
  #names: string[] = [];
  #numbers = new Map<string, number>();
  #closed: Error | undefined;

  constructor(options: { recent?: number; remembered?: number } = {}) {
    this.#recent = new RecentMap(options.recent ?? 2_000);
    this.#generation = Math.max(1, Math.ceil((options.remembered ?? 20_000) / 2));
  }

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
    this.#remember(update.id, update.conversationId, update.status !== 'acked');
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

  /** The conversation of a message updated in this run, while remembered (see `remembered`). */
  conversationOf(id: string): string | undefined {
    const v = this.#current.get(id) ?? this.#previous.get(id);
    return v === undefined ? undefined : this.#names[v >>> 1];
  }

  /** Whether a message remembered had a final update (delivered, failed, cancelled) in this run. */
  settled(id: string): boolean {
    const v = this.#current.get(id) ?? this.#previous.get(id);
    return v !== undefined && (v & 1) === 1;
  }

  /** Remembers the message's conversation (by number) and whether its update was final, as `number * 2 + final`. */
  #remember(id: string, conversationId: string, final: boolean): void {
    let n = this.#numbers.get(conversationId);
    if (n === undefined) {
      // A run that talks in very many conversations at once starts the numbering (and what it remembers) anew.
      if (this.#names.length >= 16_384) this.#forget();
      n = this.#names.push(conversationId) - 1;
      this.#numbers.set(conversationId, n);
    }
    // Once final, always: an `acked` learnt later (from a history line read early) does not undo it.
    const known = final ? undefined : (this.#current.get(id) ?? this.#previous.get(id));
    this.#current.set(id, n * 2 + (final || (known !== undefined && (known & 1) === 1) ? 1 : 0));
    if (this.#current.size >= this.#generation) {
      // The oldest generation's buffers take the next one: a map grown anew each time would leave
      // its outgrown buffers for a full collection to free.
      const recycled = this.#previous;
      recycled.clear();
      this.#previous = this.#current;
      this.#current = recycled;
    }
  }

  #forget(): void {
    this.#current = new OffHeapIdMap();
    this.#previous = new OffHeapIdMap();
    this.#names = [];
    this.#numbers = new Map();
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
