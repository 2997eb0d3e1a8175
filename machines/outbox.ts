import { assign, setup } from 'xstate';

export interface OutboxContext {
  /** Most messages awaiting their ack at once. */
  window: number;
  /** Messages handed to their lifecycle and not settled yet (as last reported). */
  inflight: number;
  /** Messages waiting for a slot (as last reported). */
  queued: number;
  /** How many the last fill planned to hand out (the outbox may send fewer). */
  lastDispatch: number;
  /** While throttled: epoch ms at which sending resumes. */
  throttledUntil: number | null;
}

export type OutboxEvent =
  /** The queue or the window changed: how many messages wait, how many are in flight (exact counts, from the outbox). */
  | { type: 'QUEUE_CHANGED'; queued: number; inflight: number }
  /** The connection is online. */
  | { type: 'ONLINE' }
  /** The connection is lost. */
  | { type: 'OFFLINE' }
  /** The server asked to wait (a retryable nack: rate limit, full inbox...). */
  | { type: 'THROTTLE'; untilMs: number };

/**
 * Draining of the outbox: while `online`, every change of the queue refills
 * the send window (at most `window` messages awaiting their ack), oldest
 * message first, so each conversation is sent in order; `offline` pauses it
 * and sends the in-flight messages back to the queue, to go first once
 * online again; `throttled` waits out a `rate_limited` nack. Only counters
 * live here, reported by the outbox: the messages themselves stay in the
 * outbox (src), one lifecycle actor each while in flight.
 *
 * `dispatch` hands at most `count` of the oldest queued messages to their
 * lifecycle; `abandonInflight` tells in-flight messages the connection is lost.
 */
export const outboxMachine = setup({
  types: {
    context: {} as OutboxContext,
    events: {} as OutboxEvent,
    input: {} as { window: number },
  },
  actions: {
    dispatch: (_, _params: { count: number }) => {},
    abandonInflight: () => {},
    recordCounts: assign(({ event }) => (event.type === 'QUEUE_CHANGED' ? { queued: event.queued, inflight: event.inflight } : {})),
    planDispatch: assign(({ context }) => ({
      lastDispatch: Math.max(0, Math.min(context.window - context.inflight, context.queued)),
    })),
    recordThrottle: assign(({ context, event }) =>
      event.type === 'THROTTLE' ? { throttledUntil: Math.max(event.untilMs, context.throttledUntil ?? 0) } : {},
    ),
    clearThrottle: assign({ throttledUntil: null }),
  },
  guards: {
    // Reads the event: guards run before the transition's assign.
    hasRoomAndWork: ({ context, event }) => event.type === 'QUEUE_CHANGED' && event.queued > 0 && event.inflight < context.window,
  },
  delays: {
    throttle: ({ context }) => Math.max(0, (context.throttledUntil ?? 0) - Date.now()),
  },
}).createMachine({
  id: 'outbox',
  description:
    'Draining of the outbox: while online, every change of the exact counts the outbox reports refills the send window, oldest message first; offline pauses it and sends in-flight messages back to the queue; a retryable nack pauses it for as long as the server asks.',
  initial: 'offline',
  context: ({ input }) => ({ window: input.window, inflight: 0, queued: 0, lastDispatch: 0, throttledUntil: null }),
  on: {
    QUEUE_CHANGED: { actions: 'recordCounts' },
  },
  states: {
    offline: {
      on: { ONLINE: 'online' },
    },
    online: {
      initial: 'draining',
      on: {
        OFFLINE: { target: 'offline', actions: 'abandonInflight' },
        THROTTLE: { target: '.throttled', actions: 'recordThrottle' },
      },
      states: {
        draining: {
          // Every entry fills the window with as many queued messages as fit.
          entry: ['planDispatch', { type: 'dispatch', params: ({ context }) => ({ count: context.lastDispatch }) }],
          on: {
            QUEUE_CHANGED: [
              { guard: 'hasRoomAndWork', target: 'draining', reenter: true, actions: 'recordCounts' },
              { actions: 'recordCounts' },
            ],
          },
        },
        throttled: {
          exit: 'clearThrottle',
          // A later, longer request to wait re-arms the timer.
          on: { THROTTLE: { target: 'throttled', reenter: true, actions: 'recordThrottle' } },
          after: { throttle: 'draining' },
        },
      },
    },
  },
});
