import { assign, setup } from 'xstate';

export interface OutboxContext {
  /** Most messages awaiting their ack at once. */
  window: number;
  /** Messages handed to their lifecycle and not settled yet. */
  inflight: number;
  /** Messages waiting for a slot. */
  queued: number;
  /** How many the last fill handed out. */
  lastDispatch: number;
  /** While throttled: epoch ms at which sending resumes. */
  throttledUntil: number | null;
}

export type OutboxEvent =
  /** Messages entered the queue: new ones, or in-flight ones sent back (timeout, retryable nack). */
  | { type: 'ENQUEUED'; count: number }
  /** Queued messages left without being sent (cancelled, expired). */
  | { type: 'REMOVED'; count: number }
  /** In-flight messages left the window (acked, failed, or sent back to the queue). */
  | { type: 'SETTLED'; count: number }
  /** The connection is online. */
  | { type: 'ONLINE' }
  /** The connection is lost. */
  | { type: 'OFFLINE' }
  /** The server asked to slow down (`rate_limited`). */
  | { type: 'THROTTLE'; untilMs: number };

/**
 * Draining of the outbox: while `online`, every change refills the send
 * window (at most `window` messages awaiting their ack), oldest message
 * first, so each conversation is sent in order; `offline` pauses it and
 * sends the in-flight messages back to the queue, to go first once online
 * again; `throttled` waits out a `rate_limited` nack. Only counters live
 * here: the messages themselves stay in the outbox (src), one lifecycle
 * actor each while in flight.
 *
 * `dispatch` hands the oldest `count` queued messages to their lifecycle;
 * `abandonInflight` tells in-flight messages the connection is lost.
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
    addQueued: assign(({ context, event }) => (event.type === 'ENQUEUED' ? { queued: context.queued + event.count } : {})),
    removeQueued: assign(({ context, event }) => (event.type === 'REMOVED' ? { queued: Math.max(0, context.queued - event.count) } : {})),
    settle: assign(({ context, event }) => (event.type === 'SETTLED' ? { inflight: Math.max(0, context.inflight - event.count) } : {})),
    takeSlots: assign(({ context }) => {
      const n = Math.max(0, Math.min(context.window - context.inflight, context.queued));
      return { inflight: context.inflight + n, queued: context.queued - n, lastDispatch: n };
    }),
    requeueInflight: assign(({ context }) => ({ queued: context.queued + context.inflight, inflight: 0 })),
    recordThrottle: assign(({ event }) => (event.type === 'THROTTLE' ? { throttledUntil: event.untilMs } : {})),
    clearThrottle: assign({ throttledUntil: null }),
  },
  delays: {
    throttle: ({ context }) => Math.max(0, (context.throttledUntil ?? 0) - Date.now()),
  },
}).createMachine({
  id: 'outbox',
  initial: 'offline',
  context: ({ input }) => ({ window: input.window, inflight: 0, queued: 0, lastDispatch: 0, throttledUntil: null }),
  on: {
    ENQUEUED: { actions: 'addQueued' },
    REMOVED: { actions: 'removeQueued' },
    SETTLED: { actions: 'settle' },
  },
  states: {
    offline: {
      on: { ONLINE: 'online' },
    },
    online: {
      initial: 'draining',
      on: {
        OFFLINE: { target: 'offline', actions: ['abandonInflight', 'requeueInflight'] },
        THROTTLE: { target: '.throttled', actions: 'recordThrottle' },
      },
      states: {
        draining: {
          // Every entry fills the window with as many queued messages as fit.
          entry: ['takeSlots', { type: 'dispatch', params: ({ context }) => ({ count: context.lastDispatch }) }],
          on: {
            ENQUEUED: { target: 'draining', reenter: true, actions: 'addQueued' },
            SETTLED: { target: 'draining', reenter: true, actions: 'settle' },
          },
        },
        throttled: {
          exit: 'clearThrottle',
          after: { throttle: 'draining' },
        },
      },
    },
  },
});
