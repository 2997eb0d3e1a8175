import type { InspectionEvent } from 'xstate';
import type { Clock } from '../Clock.js';
import { pendingItemMachine } from '../../../machines/pendingItem.js';
import { IMClientError, InvalidOptionError } from '../../errors.js';
import { messageFromRecord, type IMMessage } from '../IMMessage.js';
import type { PendingBody, PendingQueueStore, QueueItem } from '../storage/PendingQueueStore.js';
import { pendingKey, type MessageRecord } from '../storage/records.js';
import { createLifecycle, type Lifecycle } from '../statecharts/lifecycle.js';

type ItemActor = Lifecycle<typeof pendingItemMachine>;

/** A message's latest log write, settled after the ones before it (each reports its own failure). */
interface Writes {
  done: Promise<void>;
  /** Set when it failed. */
  error?: unknown;
  /** Whether a caller awaits them (it gets the failure), or only the queue does (it reports it). */
  awaited: boolean;
}

/** A message in the pending queue, with where it stands. */
export interface PendingMessage extends IMMessage {
  pending: {
    /** How many times it was claimed. */
    attempts: number;
    /** While claimed: when the claim lapses, ISO 8601. */
    leaseUntil?: string;
  };
}

/**
 * Names a pending message: `{ from, id }` (a {@link PendingMessage} will do),
 * or its id alone when no other sender's pending message has the same id.
 */
export type PendingRef = string | { from: string; id: string };

/** Options of the {@link PendingQueue}. */
export interface PendingQueueOptions {
  store: PendingQueueStore;
  inspect?: ((event: InspectionEvent) => void) | undefined;
  clock?: Clock | undefined;
  onError: (err: unknown) => void;
}

/**
 * The digital employee's pending queue: incoming messages wait here until
 * the agent acknowledges them. Claimed messages run the pending-item
 * statechart (a lease that lapses back to pending); unclaimed ones are plain
 * entries. Every change is a line in the queue log before it is reported
 * done. Messages are keyed by sender and id (message ids are unique per
 * sender): `pendingKey(from, id)`, also each claimed message's actor id.
 */
export class PendingQueue {
  readonly #o: PendingQueueOptions;
  readonly #logic: typeof pendingItemMachine;
  readonly #actors = new Map<string, ItemActor>();
  readonly #writes = new Map<string, Writes>();
  /** Messages given back with {@link release}, by key: the attempts of the claim given back (until claimed again or acknowledged). */
  readonly #givenBack = new Map<string, number>();
  #stopped = false;
  #waiters: Array<() => void> = [];

  constructor(options: PendingQueueOptions) {
    this.#o = options;
    const track = (id: string, write: Promise<void>) => {
      const before = this.#writes.get(id);
      const writes: Writes = { done: Promise.resolve(), awaited: false };
      writes.done = (before ? before.done : Promise.resolve())
        .then(() => write)
        .then(
          () => {},
          (err: unknown) => {
            writes.error = err ?? new Error('pending queue write failed');
            // A write nobody awaits (a lease that lapsed) is reported here; an awaited one rejects its caller.
            if (!writes.awaited) this.#o.onError(err);
          },
        )
        .finally(() => {
          if (this.#writes.get(id) === writes) this.#writes.delete(id);
        });
      this.#writes.set(id, writes);
    };
    this.#logic = pendingItemMachine.provide({
      actions: {
        persistClaim: ({ context }) => track(context.id, this.#o.store.claim([context.id], new Date(context.leaseUntil ?? 0).toISOString())),
        persistExtend: ({ context }) => track(context.id, this.#o.store.extend([context.id], new Date(context.leaseUntil ?? 0).toISOString())),
        persistRelease: ({ context }) => track(context.id, this.#o.store.release([context.id])),
        persistAck: ({ context }) => track(context.id, this.#o.store.ack([context.id])),
      },
    });
  }

  /** Re-arms the claims of the previous run: live leases keep their deadline, lapsed ones return to pending. */
  async start(now = Date.now()): Promise<void> {
    const lapsed: string[] = [];
    for (const [key, item] of this.#o.store.entries()) {
      if (!item.leaseUntil) continue;
      const until = Date.parse(item.leaseUntil);
      if (until <= now) lapsed.push(key);
      else this.#spawn(key, item).send({ type: 'RESUME_CLAIM', leaseUntil: until });
    }
    await this.#o.store.release(lapsed);
  }

  get size(): number {
    return this.#o.store.size;
  }

  /** Adds incoming messages (those already queued, by sender and id, are ignored); resolves once durable. */
  async add(records: readonly MessageRecord[]): Promise<void> {
    const enqueuedAt = new Date().toISOString();
    await this.#o.store.add(records.map((message) => ({ message, enqueuedAt, attempts: 0 })));
    this.#wake();
  }

  /**
   * Every message not yet acknowledged, oldest first (claimed ones included),
   * as they stand when the spilled ones have been read: one acknowledged
   * meanwhile is left out.
   */
  async list(limit = Infinity): Promise<PendingMessage[]> {
    const head: Array<{ key: string; state: ClaimState }> = [];
    for (const [key, item] of this.#o.store.entries()) {
      if (head.length >= limit) break;
      head.push({ key, state: { attempts: item.attempts, leaseUntil: item.leaseUntil } });
    }
    const bodies = await this.#o.store.peek(head.map((h) => h.key));
    return head.flatMap(({ key, state }) => {
      const body = bodies.get(key);
      return body && this.#o.store.has(key) ? [toPendingMessage(body, state)] : [];
    });
  }

  /**
   * The keys of the pending messages `refs` name (a bare id no pending
   * message has stays as it is, matching nothing). A bare id shared by
   * pending messages of several senders is refused (`INVALID_OPTION`): it
   * could name the wrong one.
   */
  keys(refs: readonly PendingRef[]): string[] {
    const keys: string[] = [];
    for (const ref of refs) {
      if (typeof ref !== 'string') {
        keys.push(pendingKey(ref.from, ref.id));
        continue;
      }
      const found = this.#o.store.keysOf(ref);
      if (found.length > 1) {
        const senders = found.map((k) => k.slice(0, k.indexOf('/'))).join(', ');
        throw new InvalidOptionError('ids', `message id ${ref} is pending from ${found.length} senders (${senders}): name it as { from, id }`);
      }
      keys.push(found[0] ?? ref);
    }
    return keys;
  }

  /** Whether the claim that gave `attempts` to this message still holds (it has not lapsed, nor been claimed again). */
  holds(key: string, attempts: number): boolean {
    const actor = this.#actors.get(key);
    return actor !== undefined && actor.getSnapshot().value === 'claimed' && this.#o.store.get(key)?.attempts === attempts;
  }

  /** Whether the message was claimed again since the claim that gave it `attempts` (released or lapsed, then taken by another). */
  claimedAgain(key: string, attempts: number): boolean {
    // The actor counts a claim at once; the store once its line is on its way (after a compaction, say).
    const claiming = this.#actors.get(key)?.getSnapshot().context.attempts ?? attempts;
    return Math.max(this.#o.store.get(key)?.attempts ?? attempts, claiming) > attempts;
  }

  /** Whether the claim that gave the message `attempts` was given back with {@link release} (not lapsed, not acknowledged). */
  givenBack(key: string, attempts: number): boolean {
    return this.#givenBack.get(key) === attempts;
  }

  /** Whether some message is waiting unclaimed. */
  hasUnclaimed(): boolean {
    for (const [key] of this.#o.store.entries()) if (!this.#actors.has(key)) return true;
    return false;
  }

  /**
   * Claims up to `max` unclaimed messages, oldest first, for `leaseMs`;
   * resolves once the claims are durable. If they cannot be written, rejects
   * and gives them back (they are not claimed on disk).
   */
  async claim(max: number, leaseMs: number): Promise<PendingMessage[]> {
    return (await this.claimKeyed(max, leaseMs)).map((c) => c.message);
  }

  /** {@link claim}, with each message's key. */
  async claimKeyed(max: number, leaseMs: number): Promise<Array<{ key: string; message: PendingMessage }>> {
    const claimed: string[] = [];
    for (const [key, item] of this.#o.store.entries()) {
      if (claimed.length >= max) break;
      if (this.#actors.has(key)) continue;
      this.#spawn(key, item).send({ type: 'CLAIM', leaseMs });
      claimed.push(key);
    }
    let bodies: Map<string, PendingBody>;
    try {
      await this.#settle(claimed);
      // Claimed anew (durably): a give-back before this is no longer the story of the message.
      for (const key of claimed) this.#givenBack.delete(key);
      // The messages of a long queue's tail are read back from its files as their turn comes.
      bodies = await this.#o.store.load(claimed);
    } catch (err) {
      for (const key of claimed) this.#actors.get(key)?.send({ type: 'RELEASE' });
      // The caller hears of the failure from this rejection; a give-back that fails too is the same fault.
      for (const key of claimed) this.#awaitedWrite(key);
      throw err;
    }
    return claimed.flatMap((key) => {
      const item = this.#o.store.get(key);
      const body = bodies.get(key);
      return item && body ? [{ key, message: toPendingMessage(body, item) }] : [];
    });
  }

  /**
   * Marks messages (by key) processed; resolves to how many were still
   * pending. If that cannot be written, rejects, and each stays as the disk
   * has it (a claimed one stays claimed until its lease ends).
   */
  async ack(keys: readonly string[]): Promise<number> {
    if (this.#stopped) throw closed();
    let acked = 0;
    for (const key of keys) {
      this.#givenBack.delete(key);
      const actor = this.#actors.get(key) ?? this.#spawnIfQueued(key);
      if (!actor) continue;
      actor.send({ type: 'ACK' });
      acked++;
    }
    try {
      await this.#settle(keys);
    } catch (err) {
      this.#reclaim(keys);
      throw err;
    }
    return acked;
  }

  /** After a failed ack or release: a message the disk still has claimed is claimed in memory again, until its lease ends. */
  #reclaim(keys: readonly string[]): void {
    if (this.#stopped) return;
    for (const key of keys) {
      const item = this.#o.store.get(key);
      if (item?.leaseUntil !== undefined && !this.#actors.has(key)) this.#spawn(key, item).send({ type: 'RESUME_CLAIM', leaseUntil: Date.parse(item.leaseUntil) });
    }
  }

  /** Gives claimed messages (by key) back to the queue unprocessed. */
  async release(keys: readonly string[]): Promise<void> {
    if (this.#stopped) throw closed();
    const released: string[] = [];
    for (const key of keys) {
      const actor = this.#actors.get(key);
      if (actor?.getSnapshot().value !== 'claimed') continue;
      this.#givenBack.set(key, this.#o.store.get(key)?.attempts ?? 0);
      released.push(key);
      actor.send({ type: 'RELEASE' });
    }
    try {
      await this.#settle(keys);
    } catch (err) {
      // Not given back on disk: still the claimant's, to finish and acknowledge.
      for (const key of released) this.#givenBack.delete(key);
      this.#reclaim(keys);
      throw err;
    }
  }

  /** Extends the lease of claimed messages (by key) by `leaseMs` from now. */
  async extend(keys: readonly string[], leaseMs: number): Promise<void> {
    // All or nothing: one that is not claimed refuses the call before any lease moves.
    const actors = keys.map((key) => {
      const actor = this.#actors.get(key);
      if (!actor) throw new IMClientError('INVALID_OPTION', `message ${key} is not claimed`);
      return actor;
    });
    for (const actor of actors) actor.send({ type: 'EXTEND', leaseMs });
    await this.#settle(keys);
  }

  /** Resolves as soon as an unclaimed message is waiting (at once if one is). Rejects with the signal's reason on abort. */
  waitForUnclaimed(signal?: AbortSignal): Promise<void> {
    if (this.hasUnclaimed()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(signal!.reason instanceof Error ? signal!.reason : new IMClientError('ABORTED', 'aborted'));
      };
      const wake = () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.push(wake);
    });
  }

  /** Wakes every {@link waitForUnclaimed} (a drain told to stop sees it at once). */
  interrupt(): void {
    this.#wake();
  }

  stop(): void {
    this.#stopped = true;
    for (const actor of this.#actors.values()) actor.stop();
    this.#actors.clear();
    this.#givenBack.clear();
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #spawnIfQueued(key: string): ItemActor | undefined {
    const item = this.#o.store.get(key);
    return item ? this.#spawn(key, item) : undefined;
  }

  #spawn(id: string, item: QueueItem): ItemActor {
    const actor = createLifecycle(this.#logic, {
      id: `pending:${id}`,
      input: { id, attempts: item.attempts },
      clock: this.#o.clock,
      inspect: this.#o.inspect,
    });
    this.#actors.set(id, actor);
    let previous: string = 'pending';
    actor.subscribe((snapshot) => {
      const back = previous === 'claimed' && snapshot.value === 'pending';
      previous = snapshot.value;
      // Back to pending (released or lapsed) or done: the item is a plain entry again, or gone.
      if (back || snapshot.status === 'done') {
        if (this.#actors.get(id) === actor) this.#actors.delete(id);
        actor.stop();
        if (back) void this.#written([id]).then(() => this.#wake());
      }
    });
    actor.start();
    return actor;
  }

  /** Resolves once the writes of these messages so far are durable; rejects with the first that failed. */
  async #settle(ids: readonly string[]): Promise<void> {
    if (ids.length === 1) {
      // The common case (one message acknowledged, released...): no arrays.
      const w = this.#awaitedWrite(ids[0]!);
      if (!w) return;
      await w.done;
      if (w.error !== undefined) throw w.error;
      return;
    }
    const writes: Writes[] = [];
    for (const id of ids) {
      const w = this.#awaitedWrite(id);
      if (w) writes.push(w);
    }
    await Promise.all(writes.map((w) => w.done));
    for (const w of writes) if (w.error !== undefined) throw w.error;
  }

  /** The message's latest write, marked as awaited by a caller (who gets its failure, rather than the error listener). */
  #awaitedWrite(id: string): Writes | undefined {
    const w = this.#writes.get(id);
    if (w) w.awaited = true;
    return w;
  }

  /** Resolves once the writes of these messages so far are settled, failed or not. */
  async #written(ids: readonly string[]): Promise<void> {
    await Promise.all(ids.map((id) => this.#writes.get(id)?.done));
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

function closed(): IMClientError {
  return new IMClientError('CLOSED', 'the pending queue is closed');
}

/** Where a pending item's claim stands. */
interface ClaimState {
  attempts: number;
  leaseUntil: string | undefined;
}

function toPendingMessage(body: PendingBody, state: ClaimState): PendingMessage {
  return {
    ...messageFromRecord(body.message),
    pending: { attempts: state.attempts, ...(state.leaseUntil === undefined ? {} : { leaseUntil: state.leaseUntil }) },
  };
}
