import { assign, setup } from 'xstate';

export interface PendingItemContext {
  /** The queued message's key, `{from}/{id}` (message ids are unique per sender). */
  id: string;
  /** Times claimed so far. */
  attempts: number;
  /** While claimed: epoch ms at which the claim lapses back to pending. */
  leaseUntil: number | null;
}

export interface PendingItemInput {
  /** The queued message's key, `{from}/{id}`. */
  id: string;
  attempts?: number | undefined;
}

export type PendingItemEvent =
  /** The agent takes the message to work on it, for `leaseMs`. */
  | { type: 'CLAIM'; leaseMs: number }
  /** On restart: the message was claimed until `leaseUntil` (epoch ms) by the previous run. */
  | { type: 'RESUME_CLAIM'; leaseUntil: number }
  /** The agent extends its claim. */
  | { type: 'EXTEND'; leaseMs: number }
  /** The agent gives the message back unprocessed. */
  | { type: 'RELEASE' }
  /** The agent has processed the message. */
  | { type: 'ACK' };

/**
 * One message in a digital employee's pending queue. It stays `pending`
 * until the agent acknowledges it: a claim (`claimed`) lasts `leaseMs`, and
 * a claim neither acknowledged nor extended in time lapses back to
 * `pending`, so a crash mid-processing loses nothing (at-least-once). The
 * lease deadline lives in context: a claim resumed after a restart re-arms
 * its timer from it (`RESUME_CLAIM`) without being recorded again.
 *
 * `persistClaim`, `persistExtend`, `persistRelease` and `persistAck` append
 * to the queue log; src provides them. An extension moves the deadline of
 * the claim it extends: it is not a new claim, and `attempts` stays.
 */
export const pendingItemMachine = setup({
  types: {
    context: {} as PendingItemContext,
    events: {} as PendingItemEvent,
    input: {} as PendingItemInput,
  },
  actions: {
    persistClaim: () => {},
    persistExtend: () => {},
    persistRelease: () => {},
    persistAck: () => {},
    startLease: assign(({ context, event }) => {
      if (event.type === 'CLAIM') return { leaseUntil: Date.now() + event.leaseMs, attempts: context.attempts + 1 };
      if (event.type === 'RESUME_CLAIM') return { leaseUntil: event.leaseUntil };
      if (event.type === 'EXTEND') return { leaseUntil: Date.now() + event.leaseMs };
      return {};
    }),
    endLease: assign({ leaseUntil: null }),
  },
  delays: {
    leaseRemaining: ({ context }) => Math.max(0, (context.leaseUntil ?? 0) - Date.now()),
  },
}).createMachine({
  id: 'pendingItem',
  description:
    'One message in a digital employee\'s pending queue: a claim lasts a lease and lapses back to pending unless acknowledged or extended; a claim resumed after a restart re-arms its deadline without being recorded again.',
  initial: 'pending',
  context: ({ input }) => ({ id: input.id, attempts: input.attempts ?? 0, leaseUntil: null }),
  states: {
    pending: {
      on: {
        CLAIM: { target: 'claimed', actions: ['startLease', 'persistClaim'] },
        RESUME_CLAIM: { target: 'claimed', actions: 'startLease' },
        ACK: 'done',
      },
    },
    claimed: {
      on: {
        EXTEND: { target: 'claimed', reenter: true, actions: ['startLease', 'persistExtend'] },
        RELEASE: { target: 'pending', actions: ['endLease', 'persistRelease'] },
        ACK: 'done',
      },
      after: {
        leaseRemaining: { target: 'pending', actions: ['endLease', 'persistRelease'] },
      },
    },
    done: {
      type: 'final',
      entry: 'persistAck',
    },
  },
});
