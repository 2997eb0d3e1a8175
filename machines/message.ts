import { assign, setup } from 'xstate';

/** Why a message failed, as recorded in its `failed` status line. */
export interface MessageFailure {
  /** `MESSAGE_REJECTED`, `MESSAGE_TOO_LARGE`, `MESSAGE_EXPIRED` or `TIMEOUT`. */
  code: string;
  /** The server's nack code, when the server refused it. */
  nack?: string;
  message: string;
}

export interface MessageContext {
  id: string;
  conversationId: string;
  to: string;
  /** Times the frame was written to a socket. */
  attempts: number;
  /** Ack timeouts so far. */
  failures: number;
  /** Give up after this many ack timeouts. */
  maxAttempts: number;
  ackTimeoutMs: number;
  /** Epoch ms after which a message never sent fails instead, or null for no limit. */
  expiresAt: number | null;
  /** Epoch ms by which the pending ack must arrive (in `awaitingAck`). */
  ackDeadline: number | null;
  /** Sequence in the recipient's inbox, once acked. */
  seq: number | null;
  /** When the server stored it, once acked. */
  serverAt: string | null;
  /** When the recipient acknowledged it, once delivered. */
  deliveredAt: string | null;
  error: MessageFailure | null;
}

export interface MessageInput {
  id: string;
  conversationId: string;
  to: string;
  maxAttempts?: number | undefined;
  ackTimeoutMs?: number | undefined;
  expiresAt?: number | null | undefined;
}

export type MessageEvent =
  /** The outbox gave the message a slot in the send window (only while online). */
  | { type: 'DISPATCH' }
  /** The send frame was written to the socket. */
  | { type: 'SENT' }
  /** The server stored the message. */
  | { type: 'ACK'; seq: number; at: string }
  /** The server refused it; `retryable` says whether sending it again can help. */
  | { type: 'NACK'; code: string; message: string; retryable: boolean }
  /** The connection dropped while the message was in flight. */
  | { type: 'CONNECTION_LOST' }
  /** The recipient acknowledged delivery. */
  | { type: 'RECEIPT'; at: string }
  /** The caller cancelled it (only possible while queued). */
  | { type: 'CANCEL' }
  /** Its time to live ran out while it waited. */
  | { type: 'EXPIRE' };

/**
 * The ack lifecycle of one outgoing message: `queued` -> `inFlight`
 * (`sending` -> `awaitingAck`) -> `acked` -> `delivered`. An ack timeout sends it back to
 * `queued` (same id: the server deduplicates) until `maxAttempts` timeouts;
 * a retryable nack (the server asks to wait: rate limit, full inbox) sends
 * it back without counting, so only the time to live bounds that wait; a
 * permanent nack or too many timeouts end in `failed`, and so does a time to
 * live that runs out before the message was ever sent (once sent, it is only
 * resent: the server may already have it); a lost connection returns it to
 * `queued`; `cancelled` is reachable only from `queued`. A receipt can
 * overtake the ack (after a crash the ack may be lost while the recipient
 * got it).
 *
 * `transmit` writes the frame; `persistStatus` appends the status line to
 * the conversation log (its `status` param names it). src provides both.
 */
export const messageMachine = setup({
  types: {
    context: {} as MessageContext,
    events: {} as MessageEvent,
    input: {} as MessageInput,
  },
  actions: {
    transmit: () => {},
    persistStatus: (_, _params: { status: 'acked' | 'delivered' | 'failed' | 'cancelled' }) => {},
    countAttempt: assign({ attempts: ({ context }) => context.attempts + 1 }),
    armAckDeadline: assign({ ackDeadline: ({ context }) => Date.now() + context.ackTimeoutMs }),
    clearAckDeadline: assign({ ackDeadline: null }),
    countFailure: assign({ failures: ({ context }) => context.failures + 1 }),
    recordAck: assign(({ event }) => (event.type === 'ACK' ? { seq: event.seq, serverAt: event.at } : {})),
    recordReceipt: assign(({ event }) => (event.type === 'RECEIPT' ? { deliveredAt: event.at } : {})),
    recordRejection: assign(({ event }) =>
      event.type === 'NACK' ? { error: { code: event.code === 'too_large' ? 'MESSAGE_TOO_LARGE' : 'MESSAGE_REJECTED', nack: event.code, message: event.message } } : {},
    ),
    recordExpiry: assign({ error: { code: 'MESSAGE_EXPIRED', message: 'its time to live ran out before the server acknowledged it' } }),
    recordTooManyAttempts: assign(({ context }) => ({
      error: { code: 'TIMEOUT', message: `no ack after ${context.failures} attempts` },
    })),
  },
  guards: {
    // Only a message never sent may expire: one sent may be stored already, so it is resent instead.
    expired: ({ context }) => context.attempts === 0 && context.expiresAt !== null && Date.now() >= context.expiresAt,
    canRetry: ({ context }) => context.failures + 1 < context.maxAttempts,
    retryableNack: ({ event }) => event.type === 'NACK' && event.retryable,
  },
  delays: {
    ackTimeout: ({ context }) => context.ackTimeoutMs,
  },
}).createMachine({
  id: 'message',
  description:
    'The ack lifecycle of one outgoing message. An ack timeout resends it (same id) until `maxAttempts`; a retryable nack sends it back without counting; a permanent nack, too many timeouts, or a time to live that runs out before the first send end in `failed`; a lost connection returns it to `queued`; only a queued message can be cancelled; a receipt can overtake the ack.',
  initial: 'queued',
  context: ({ input }) => ({
    id: input.id,
    conversationId: input.conversationId,
    to: input.to,
    attempts: 0,
    failures: 0,
    maxAttempts: input.maxAttempts ?? 10,
    ackTimeoutMs: input.ackTimeoutMs ?? 10_000,
    expiresAt: input.expiresAt ?? null,
    ackDeadline: null,
    seq: null,
    serverAt: null,
    deliveredAt: null,
    error: null,
  }),
  on: {
    // Whatever the state, a receipt means the recipient has it (final states ignore events).
    RECEIPT: { target: '.delivered', actions: 'recordReceipt' },
  },
  states: {
    queued: {
      on: {
        DISPATCH: [
          { guard: 'expired', target: 'failed', actions: 'recordExpiry' },
          { target: 'inFlight', actions: 'countAttempt' },
        ],
        CANCEL: 'cancelled',
        EXPIRE: { target: 'failed', actions: 'recordExpiry' },
      },
    },
    // On its way: written (sending), then waiting for the server's answer. The answer or a lost
    // connection can come in either sub-state (an ack proves the frame was written).
    inFlight: {
      initial: 'sending',
      on: {
        ACK: { target: 'acked', actions: 'recordAck' },
        NACK: [{ guard: 'retryableNack', target: 'queued' }, { target: 'failed', actions: 'recordRejection' }],
        CONNECTION_LOST: 'queued',
      },
      states: {
        sending: {
          entry: 'transmit',
          on: { SENT: 'awaitingAck' },
        },
        awaitingAck: {
          entry: 'armAckDeadline',
          exit: 'clearAckDeadline',
          after: {
            ackTimeout: [
              { guard: 'canRetry', target: '#message.queued', actions: 'countFailure' },
              { target: '#message.failed', actions: ['countFailure', 'recordTooManyAttempts'] },
            ],
          },
        },
      },
    },
    acked: {
      entry: { type: 'persistStatus', params: { status: 'acked' } },
    },
    delivered: {
      type: 'final',
      entry: { type: 'persistStatus', params: { status: 'delivered' } },
    },
    failed: {
      type: 'final',
      entry: { type: 'persistStatus', params: { status: 'failed' } },
    },
    cancelled: {
      type: 'final',
      entry: { type: 'persistStatus', params: { status: 'cancelled' } },
    },
  },
});
